/**
 * The demo's chart: test-set accuracy of the served model against the samples it was trained on,
 * one panel per category, with the oracle (trained on every label of the traffic pool) as a dashed
 * line. A self-contained HTML page with inline SVG: no scripts, no external resources.
 */

export interface AccuracyPoint {
  /** Samples the model was trained on (0 for the seed model, which was trained on the labeled seed). */
  samples: number;
  /** Accuracy on the fixed test set, in [0, 1]. */
  accuracy: number;
  /** e.g. "v1 (seed)", "v3". */
  label: string;
}

export interface AccuracySeries {
  category: string;
  /** Served models in promotion order; the first is the seed model. */
  points: AccuracyPoint[];
  /** Test-set accuracy of a model trained on every label of the pool. */
  oracle: number;
  /** Samples of the category at the end of the traffic (the x axis runs to here). */
  samplesAtEnd: number;
  /** Snapshot sizes of candidates the promotion gate rejected (drawn on the served line). */
  rejectedAt?: number[];
}

export interface ChartText {
  title: string;
  /** One line under the title (e.g. the seed and traffic sizes). */
  subtitle?: string;
}

const WIDTH = 520;
const HEIGHT = 340;
const MARGIN = { left: 56, right: 24, top: 50, bottom: 48 };
const LINE_COLOR = '#1f6fb2';
const ORACLE_COLOR = '#c0392b';
const REJECTED_COLOR = '#777';

/** The whole HTML page. */
export function accuracyChartHtml(series: readonly AccuracySeries[], text: ChartText): string {
  const panels = series.map((s) => panelSvg(s)).join('\n');
  const rows = series.flatMap((s) =>
    s.points.map((p, i) => {
      const until = s.points[i + 1]?.samples ?? s.samplesAtEnd;
      return `<tr><td>${escapeHtml(s.category)}</td><td>${escapeHtml(p.label)}</td><td>${p.samples}</td><td>${until}</td><td>${pct(p.accuracy)}</td><td>${pct(s.oracle)}</td></tr>`;
    }),
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(text.title)}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  p.sub { margin: 0 0 16px; color: #555; }
  .panels { display: flex; flex-wrap: wrap; gap: 16px; }
  svg { background: #fff; border: 1px solid #ddd; }
  table { border-collapse: collapse; margin-top: 20px; font-size: 13px; }
  th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
</style>
</head>
<body>
<h1>${escapeHtml(text.title)}</h1>
${text.subtitle ? `<p class="sub">${escapeHtml(text.subtitle)}</p>` : ''}
<div class="panels">
${panels}
</div>
<table>
<thead><tr><th>category</th><th>model</th><th>trained on samples</th><th>served until samples</th><th>test-set accuracy</th><th>oracle</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</body>
</html>
`;
}

/** One category: the served model's accuracy as a step line (a model serves until the next promotion), the oracle dashed. */
export function panelSvg(s: AccuracySeries): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xMax = Math.max(1, s.samplesAtEnd, ...s.points.map((p) => p.samples));
  const yValues = [s.oracle, ...s.points.map((p) => p.accuracy)];
  const yMin = Math.max(0, Math.floor((Math.min(...yValues) - 0.02) * 20) / 20);
  const yMax = Math.min(1, Math.ceil((Math.max(...yValues) + 0.005) * 20) / 20);
  const x = (v: number): number => MARGIN.left + (v / xMax) * plotW;
  const y = (v: number): number => MARGIN.top + (1 - (v - yMin) / Math.max(1e-9, yMax - yMin)) * plotH;
  const parts: string[] = [];

  for (const tick of yTicks(yMin, yMax)) {
    parts.push(`<line x1="${f(MARGIN.left)}" y1="${f(y(tick))}" x2="${f(MARGIN.left + plotW)}" y2="${f(y(tick))}" stroke="#eee"/>`);
    parts.push(`<text x="${f(MARGIN.left - 6)}" y="${f(y(tick) + 4)}" text-anchor="end" font-size="11">${pct(tick, 0)}</text>`);
  }
  for (const tick of xTicks(xMax)) {
    parts.push(`<line x1="${f(x(tick))}" y1="${f(MARGIN.top + plotH)}" x2="${f(x(tick))}" y2="${f(MARGIN.top + plotH + 4)}" stroke="#888"/>`);
    parts.push(`<text x="${f(x(tick))}" y="${f(MARGIN.top + plotH + 17)}" text-anchor="middle" font-size="11">${tick}</text>`);
  }
  parts.push(`<rect x="${f(MARGIN.left)}" y="${f(MARGIN.top)}" width="${f(plotW)}" height="${f(plotH)}" fill="none" stroke="#888"/>`);

  // Oracle: dashed horizontal line.
  parts.push(`<line x1="${f(MARGIN.left)}" y1="${f(y(s.oracle))}" x2="${f(MARGIN.left + plotW)}" y2="${f(y(s.oracle))}" stroke="${ORACLE_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  parts.push(`<text x="${f(MARGIN.left + plotW - 4)}" y="${f(y(s.oracle) - 5)}" text-anchor="end" font-size="11" fill="${ORACLE_COLOR}">oracle ${pct(s.oracle)}</text>`);

  // Served model: step line.
  const path: string[] = [];
  s.points.forEach((p, i) => {
    const until = s.points[i + 1]?.samples ?? xMax;
    path.push(`${i === 0 ? 'M' : 'L'}${f(x(p.samples))},${f(y(p.accuracy))}`, `L${f(x(until))},${f(y(p.accuracy))}`);
  });
  if (path.length > 0) parts.push(`<path d="${path.join(' ')}" fill="none" stroke="${LINE_COLOR}" stroke-width="2"/>`);
  for (const samples of s.rejectedAt ?? []) {
    const served = [...s.points].reverse().find((p) => p.samples <= samples) ?? s.points[0];
    if (!served) continue;
    const cx = x(samples);
    const cy = y(served.accuracy);
    parts.push(
      `<path d="M${f(cx - 4)},${f(cy - 4)} L${f(cx + 4)},${f(cy + 4)} M${f(cx - 4)},${f(cy + 4)} L${f(cx + 4)},${f(cy - 4)}" stroke="${REJECTED_COLOR}" stroke-width="1.5"><title>${escapeHtml(`candidate trained on ${samples} samples rejected by the promotion gate`)}</title></path>`,
    );
  }
  for (const p of s.points) {
    const px = x(p.samples);
    const nearRightEdge = px > MARGIN.left + plotW - 40;
    parts.push(`<circle cx="${f(px)}" cy="${f(y(p.accuracy))}" r="3.5" fill="${LINE_COLOR}"><title>${escapeHtml(`${p.label}: ${pct(p.accuracy)} after ${p.samples} samples`)}</title></circle>`);
    parts.push(`<text x="${f(nearRightEdge ? px - 4 : px + 4)}" y="${f(y(p.accuracy) + 14)}" font-size="10" fill="${LINE_COLOR}"${nearRightEdge ? ' text-anchor="end"' : ''}>${escapeHtml(p.label)}</text>`);
  }

  parts.push(`<text x="${f(MARGIN.left)}" y="20" font-size="14" font-weight="600">${escapeHtml(s.category)}</text>`);
  parts.push(`<text x="${f(MARGIN.left + plotW / 2)}" y="${f(HEIGHT - 10)}" text-anchor="middle" font-size="12">labeled samples seen by the trainer</text>`);
  parts.push(`<text transform="translate(14 ${f(MARGIN.top + plotH / 2)}) rotate(-90)" text-anchor="middle" font-size="12">test-set accuracy</text>`);
  const lx = MARGIN.left;
  parts.push(
    `<g font-size="11">` +
      `<line x1="${f(lx)}" y1="34" x2="${f(lx + 22)}" y2="34" stroke="${LINE_COLOR}" stroke-width="2"/><text x="${f(lx + 26)}" y="38">served model</text>` +
      `<line x1="${f(lx + 110)}" y1="34" x2="${f(lx + 132)}" y2="34" stroke="${ORACLE_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/><text x="${f(lx + 136)}" y="38">oracle (all pool labels)</text>` +
      `<path d="M${f(lx + 272)},30 L${f(lx + 280)},38 M${f(lx + 272)},38 L${f(lx + 280)},30" stroke="${REJECTED_COLOR}" stroke-width="1.5"/><text x="${f(lx + 286)}" y="38">rejected candidate</text>` +
      `</g>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(`${s.category}: test-set accuracy against samples seen`)}">\n${parts.join('\n')}\n</svg>`;
}

function yTicks(min: number, max: number): number[] {
  const step = max - min > 0.3 ? 0.1 : 0.05;
  const out: number[] = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + 1e-9; v += step) out.push(Math.round(v * 1000) / 1000);
  return out;
}

function xTicks(max: number): number[] {
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? magnitude * 10;
  const out: number[] = [];
  for (let v = 0; v <= max; v += step) out.push(v);
  return out;
}

function f(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function pct(v: number, digits = 1): string {
  return `${(v * 100).toFixed(digits)}%`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
