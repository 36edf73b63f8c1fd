/* sampleloop dashboard: reads only the engine's /api/v1 endpoints, redraws every second (uPlot). */
(function () {
  'use strict';
  const REFRESH_MS = 1000;
  const MAX_POINTS = 300;
  // Okabe-Ito: distinguishable with the common colour-vision deficiencies.
  const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#8C6D00'];
  const KIND_COLORS = { predictions: '#0072B2', feedback: '#E69F00', samples: '#009E73' };
  const OUTCOME_STYLE = {
    matched: { color: '#009E73', label: 'matched' },
    revised: { color: '#0072B2', label: 'revised' },
    unmatched: { color: '#E69F00', label: 'unmatched' },
    'default-sample': { color: '#56B4E9', label: 'default sample' },
    'orphan-no-prediction': { color: '#D55E00', label: 'orphan: no prediction' },
    'orphan-outside-window': { color: '#CC79A7', label: 'orphan: outside window' },
    'late-prediction': { color: '#8C6D00', label: 'late prediction', dash: [6, 3] },
    'late-feedback': { color: '#8C6D00', label: 'late feedback', dash: [2, 2] },
    review: { color: '#5A5A5A', label: 'review' },
  };
  const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3]];

  const charts = new Map();
  // For the browser tests (where a marker is on screen); nothing else reads it.
  window.__dashboardCharts = charts;
  const categoryColors = new Map();
  let accuracyMarkers = [];

  const $ = (id) => document.getElementById(id);
  const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '–' : Math.round(n).toLocaleString('en-US'));
  const pct = (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(1) + '%');
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const time = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '–');
  const secs = (t) => t.map((ms) => ms / 1000);

  function colorOf(category) {
    if (!categoryColors.has(category)) categoryColors.set(category, PALETTE[categoryColors.size % PALETTE.length]);
    return categoryColors.get(category);
  }

  // With http.tokensFile the API needs an admin token: open the page as /#token=<token>. The fragment
  // never leaves the browser; the token is kept for this tab only and removed from the address bar.
  const token = (function () {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      window.sessionStorage.setItem('sampleloop-token', decodeURIComponent(match[1]));
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    return window.sessionStorage.getItem('sampleloop-token');
  })();

  async function get(path) {
    const headers = { accept: 'application/json' };
    if (token) headers.authorization = 'Bearer ' + token;
    const res = await fetch(path, { headers });
    if (res.status === 401) throw new Error(path + ': HTTP 401: this engine needs a token; open the page as /#token=<an admin token of http.tokensFile>');
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
    return res.json();
  }

  function widthOf(el) {
    return Math.max(200, el.clientWidth || el.parentElement.clientWidth || 300);
  }

  /** Creates the plot, or only swaps its data when the series are the same. */
  function plot(id, el, key, makeOpts, data) {
    const known = charts.get(id);
    if (known && known.key === key && known.el === el) {
      known.plot.setData(data);
      return known.plot;
    }
    if (known) known.plot.destroy();
    el.querySelectorAll('.uplot, .empty').forEach((n) => n.remove());
    const opts = makeOpts(widthOf(el));
    const p = new uPlot(opts, data, el);
    charts.set(id, { key, el, plot: p });
    return p;
  }

  function empty(id, el, text) {
    const known = charts.get(id);
    if (known) {
      known.plot.destroy();
      charts.delete(id);
    }
    if (!el.querySelector('.empty')) el.insertAdjacentHTML('beforeend', '<div class="empty">' + esc(text) + '</div>');
    el.dataset.points = '0';
  }

  function stepFor(overview) {
    const res = overview.resolutionMs;
    const span = overview.newest !== null && overview.oldest !== null ? overview.newest - overview.oldest : 0;
    return Math.max(res, Math.ceil(span / MAX_POINTS / res) * res);
  }

  function baseOpts(width, height, series, extra) {
    return Object.assign({ width, height, series, legend: { live: false }, cursor: { drag: { x: false, y: false } } }, extra || {});
  }

  function line(label, color, dash, scale) {
    return { label, stroke: color, width: 1.5, dash: dash || [], spanGaps: true, points: { show: false }, scale: scale || 'y' };
  }

  function countPoints(data) {
    let n = 0;
    for (let i = 1; i < data.length; i++) for (const v of data[i]) if (v !== null && v !== undefined) n++;
    return n;
  }

  // ---------------------------------------------------------------- panels

  function renderOverview(o) {
    $('mode').textContent = o.mode + ' mode';
    const t = o.totals;
    $('kpi-predictions').textContent = fmt(t.predictions);
    $('kpi-feedback').textContent = fmt(t.feedback);
    $('kpi-samples').textContent = fmt(t.samples);
    $('kpi-unmatched').textContent = fmt(t.unmatched);
    const closed = t.matched + t.unmatched;
    $('kpi-unmatched-share').textContent = closed > 0 ? pct(t.unmatched / closed) + ' of closed' : '';
    const orphans = t.orphans['no-prediction'] + t.orphans['outside-window'];
    $('kpi-orphans').textContent = fmt(orphans) + ' · ' + fmt(t.late.prediction + t.late.feedback) + ' · ' + fmt(t.review);
    $('kpi-dead-letters').textContent = fmt(t.deadLetters);
    $('kpi-dead-letters').parentElement.classList.toggle('bad', t.deadLetters > 0);
    const acc = $('kpi-accuracy');
    acc.innerHTML = o.serving.length === 0
      ? '<span class="muted">no model in the ledger</span>'
      : o.serving.map((s) => '<span id="kpi-accuracy-' + esc(s.category) + '" data-version="' + esc(s.version) + '" data-accuracy="' + (s.liveAccuracy === null ? '' : s.liveAccuracy) +
          '"><b style="color:' + colorOf(s.category) + '">' + esc(s.category) + '</b> v' + esc(s.version) + ': ' + pct(s.liveAccuracy) +
          (s.confirmed + s.corrected > 0 ? ' <span class="muted">(' + fmt(s.confirmed) + '/' + fmt(s.confirmed + s.corrected) + ')</span>'
            : ' <span class="muted">no feedback yet' + (s.previous ? '; v' + esc(s.previous.version) + ' ' + pct(s.previous.liveAccuracy) : '') + '</span>') + '</span>').join(' &nbsp; ');
    const alarm = $('ledger-alarm');
    if (o.ledger.failures > 0) {
      alarm.hidden = false;
      alarm.textContent = '⚠ MODEL LEDGER VERIFICATION FAILED: ' + o.ledger.failures + ' record(s) do not verify. See the ledger panel; the predictor serves the last verified version.';
    } else {
      alarm.hidden = true;
    }
  }

  function renderTraffic(d) {
    const box = $('traffic-charts');
    const cats = Object.keys(d.categories);
    box.dataset.points = '0';
    if (d.t.length === 0 || cats.length === 0) {
      for (const id of [...charts.keys()].filter((k) => k.startsWith('traffic:'))) { charts.get(id).plot.destroy(); charts.delete(id); }
      box.innerHTML = '<div class="empty">no traffic yet</div>';
      return;
    }
    box.querySelectorAll(':scope > .empty').forEach((n) => n.remove());
    let total = 0;
    const width = Math.max(200, box.clientWidth);
    const height = Math.max(90, Math.floor(280 / cats.length) - 16);
    for (const cat of cats) {
      let el = box.querySelector('[data-category="' + CSS.escape(cat) + '"]');
      if (!el) {
        el = document.createElement('div');
        el.className = 'chart';
        el.dataset.category = cat;
        el.innerHTML = '<p class="title" style="color:' + colorOf(cat) + '">' + esc(cat) + '</p>';
        box.appendChild(el);
      }
      const c = d.categories[cat];
      const data = [secs(d.t), c.predictions, c.feedback, c.samples];
      total += countPoints(data);
      plot('traffic:' + cat, el, 'traffic' + cats.length, () => baseOpts(width, height, [
        {},
        line('predictions/s', KIND_COLORS.predictions),
        line('feedback/s', KIND_COLORS.feedback, [6, 3]),
        line('samples/s', KIND_COLORS.samples, [2, 2]),
      ], { legend: { show: false }, axes: [{ size: 44 }, { size: 36 }] }), data);
    }
    box.dataset.points = String(total);
  }

  function renderOutcomes(d) {
    const el = $('outcomes-chart');
    const names = Object.keys(d.series).filter((n) => d.series[n].some((v) => v > 0));
    if (d.t.length === 0 || names.length === 0) return empty('outcomes', el, 'no join outcomes yet');
    el.querySelectorAll('.empty').forEach((n) => n.remove());
    const data = [secs(d.t)].concat(names.map((n) => d.series[n]));
    el.dataset.points = String(countPoints(data));
    let dl = 0;
    plot('outcomes', el, names.join(','), (w) => baseOpts(w, 165, [{}].concat(names.map((n) => {
      const s = OUTCOME_STYLE[n];
      if (s) return line(s.label, s.color, s.dash);
      return line('dead letter: ' + n.slice('dead-letter:'.length), '#000000', DASHES[dl++ % DASHES.length]);
    }))), data);
  }

  function renderDelay(d) {
    const el = $('delay-chart');
    const has = d.p50.some((v) => v !== null);
    if (d.t.length === 0 || !has) {
      empty('delay', el, 'no labeled samples yet');
    } else {
      el.querySelectorAll('.empty').forEach((n) => n.remove());
      const data = [secs(d.t), d.p50, d.p90, d.p99];
      el.dataset.points = String(countPoints(data));
      plot('delay', el, 'delay', (w) => baseOpts(w, 125, [
        {},
        line('p50 s', '#0072B2'),
        line('p90 s', '#E69F00', [6, 3]),
        line('p99 s', '#D55E00', [2, 2]),
      ], { axes: [{}, { size: 40, values: (_u, ticks) => ticks.map((v) => v + 's') }] }), data);
    }
    const hist = $('delay-histogram');
    const last = d.histogram.counts.reduce((m, c, i) => (c > 0 ? i : m), -1);
    if (last < 0) return empty('delay-hist', hist, 'no label delays yet');
    hist.querySelectorAll('.empty').forEach((n) => n.remove());
    const bounds = d.histogram.upperBounds.slice(0, last + 1).map((b) => (b === null ? '+Inf' : '≤' + (b >= 60 ? b / 60 + 'm' : b + 's')));
    const xs = bounds.map((_, i) => i);
    const data = [xs, d.histogram.counts.slice(0, last + 1)];
    hist.dataset.points = String(data[1].filter((v) => v > 0).length);
    const every = Math.ceil(bounds.length / 8);
    plot('delay-hist', hist, 'hist' + last, (w) => baseOpts(w, 110, [
      { label: 'delay' },
      { label: 'samples (window: p50 ' + fmtS(d.window.p50) + ', p90 ' + fmtS(d.window.p90) + ', p99 ' + fmtS(d.window.p99) + ')', stroke: '#0072B2', fill: 'rgba(0,114,178,0.35)', paths: uPlot.paths.bars({ size: [0.85, 40] }), points: { show: false } },
    ], {
      scales: { x: { time: false, range: [-0.5, last + 0.5] } },
      axes: [{ values: (_u, ticks) => ticks.map((i) => (i % every === 0 ? bounds[i] || '' : '')), splits: () => xs, size: 24 }, { size: 40 }],
    }), data);
  }

  function fmtS(v) {
    return v === null ? '–' : v < 10 ? v.toFixed(1) + 's' : Math.round(v) + 's';
  }

  function renderAccuracy(d) {
    const el = $('accuracy-chart');
    accuracyMarkers = d.markers;
    const list = $('accuracy-markers');
    list.innerHTML = d.markers.slice().reverse().map((m) => '<li class="' + m.kind + '" data-kind="' + m.kind + '" data-category="' + esc(m.category) + '" data-version="' + esc(m.version) + '">' + markerText(m) + '</li>').join('');
    if (d.t.length === 0 || d.series.length === 0) return empty('accuracy', el, 'no feedback-labeled samples yet');
    el.querySelectorAll('.empty').forEach((n) => n.remove());
    const versionsSeen = new Map();
    const series = [{}].concat(d.series.map((s) => {
      const n = versionsSeen.get(s.category) || 0;
      versionsSeen.set(s.category, n + 1);
      return Object.assign(line(s.category + ' v' + s.version, colorOf(s.category), DASHES[n % DASHES.length]), { value: (_u, v) => pct(v) });
    }));
    series.push({ label: 'trigger floor ' + pct(d.floor), stroke: '#5A5A5A', dash: [3, 3], width: 1, points: { show: false } });
    const data = [secs(d.t)].concat(d.series.map((s) => s.values)).concat([d.t.map(() => d.floor)]);
    el.dataset.points = String(countPoints(data.slice(0, -1)));
    const cats = [...new Set(d.series.map((s) => s.category))];
    $('accuracy-key').innerHTML = cats.map((c) => '<b style="color:' + colorOf(c) + '">━ ' + esc(c) + '</b>').join(' ') +
      ' <span class="muted">one line per model version (it starts at its ▲); ┅ trigger floor ' + pct(d.floor) + '</span>';
    const p = plot('accuracy', el, d.series.map((s) => s.category + '/' + s.version).join(','), (w) => baseOpts(w, 190, series, {
      legend: { show: false },
      scales: { y: { range: [0, 1] } },
      axes: [{}, { values: (_u, ticks) => ticks.map((v) => Math.round(v * 100) + '%'), size: 52 }],
      hooks: { draw: [drawMarkers], setCursor: [markerTip] },
    }), data);
    p.redraw(false, false);
  }

  function markerText(m) {
    const holdout = m.holdoutAccuracy === null || m.holdoutAccuracy === undefined ? '' : ' holdout ' + pct(m.holdoutAccuracy) + (m.servingHoldoutAccuracy !== null && m.servingHoldoutAccuracy !== undefined ? ' vs ' + pct(m.servingHoldoutAccuracy) + ' serving' : '') + (m.holdoutSize ? ' (n=' + m.holdoutSize + ')' : '');
    const what = m.kind === 'promoted' ? '▲ ' + esc(m.category) + ' v' + esc(m.version) + (m.trainer ? ' by ' + esc(m.trainer) : '') : '✕ rejected ' + esc(m.category) + ' candidate v' + esc(m.version);
    return time(m.at) + ' ' + what + holdout;
  }

  /** Promotions (▲) and rejected candidates (✕) as vertical lines on the time axis. */
  function drawMarkers(u) {
    const ctx = u.ctx;
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    let drawn = 0;
    ctx.save();
    for (const m of accuracyMarkers) {
      const x = m.at / 1000;
      if (x < xmin || x > xmax) continue;
      const px = Math.round(u.valToPos(x, 'x', true));
      const color = colorOf(m.category);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash(m.kind === 'promoted' ? [] : [3 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(px, u.bbox.top);
      ctx.lineTo(px, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = 11 * devicePixelRatio + 'px system-ui, sans-serif';
      const row = [...categoryColors.keys()].indexOf(m.category);
      ctx.fillText((m.kind === 'promoted' ? '▲ v' : '✕ v') + m.version, px + 3 * devicePixelRatio, u.bbox.top + (11 + 12 * Math.max(0, row)) * devicePixelRatio);
      drawn++;
    }
    ctx.restore();
    u.root.parentElement.dataset.markers = String(drawn);
  }

  function markerTip(u) {
    const tip = $('accuracy-tip');
    const left = u.cursor.left;
    if (left === undefined || left < 0) { tip.hidden = true; return; }
    let best = null;
    for (const m of accuracyMarkers) {
      const px = u.valToPos(m.at / 1000, 'x');
      if (Math.abs(px - left) <= 6 && (!best || Math.abs(px - left) < best.d)) best = { m, d: Math.abs(px - left) };
    }
    if (!best) { tip.hidden = true; return; }
    tip.innerHTML = markerText(best.m);
    tip.hidden = false;
    const panel = $('panel-accuracy').getBoundingClientRect();
    const over = u.over.getBoundingClientRect();
    tip.style.left = Math.min(over.left - panel.left + left + 10, panel.width - 260) + 'px';
    tip.style.top = over.top - panel.top + 20 + 'px';
  }

  function renderLedger(d) {
    const state = $('ledger-state');
    if (d.error) state.innerHTML = '<span class="no">cannot read the ledger: ' + esc(d.error) + '</span>';
    else if (d.verified === null) state.textContent = 'not read yet';
    else state.innerHTML = d.verified ? '<span class="ok">✓ hash chain verified</span> ' + time(d.readAt) : '<span class="no">✕ ' + d.failures + ' record(s) FAIL verification</span>';
    const rows = [];
    let versions = 0;
    for (const c of d.categories) {
      rows.push('<tr><th colspan="5" class="cat" style="color:' + colorOf(c.category) + '">' + esc(c.category) + ' <span class="muted">serving v' + esc(c.serving === null ? '–' : c.serving) + '</span></th></tr>');
      for (const v of c.versions.slice().reverse()) {
        const serving = v.version === c.serving && v.verified;
        versions++;
        rows.push('<tr class="' + (v.verified ? '' : 'failed') + '" data-category="' + esc(c.category) + '" data-version="' + esc(v.version === null ? '' : v.version) + '"><td>v' + esc(v.version === null ? '?' : v.version) + (serving ? ' <b>serving</b>' : '') +
          '</td><td>' + esc(v.trainer || '–') + '</td><td>' + time(v.createdAt).slice(11) + '</td><td class="num">' + pct(v.holdoutAccuracy) + '</td><td>' +
          (v.verified ? '<span class="ok">✓</span>' : '<span class="no" title="' + esc(v.failure.reason) + '">✕ ' + esc(v.failure.code) + '</span>') + '</td></tr>');
      }
    }
    $('ledger-table').innerHTML = versions === 0 ? '<div class="empty">no model versions in the ledger</div>'
      : '<table><thead><tr><th>version</th><th>trained by</th><th>created</th><th>holdout</th><th>chain</th></tr></thead><tbody>' + rows.join('') + '</tbody></table>';
    $('ledger-table').dataset.rows = String(versions);
  }

  function renderRuntime(d) {
    const lagEl = $('lag-chart');
    const parts = Object.keys(d.lag);
    if (d.t.length === 0 || parts.length === 0) {
      empty('lag', lagEl, 'no lag reported yet');
    } else {
      lagEl.querySelectorAll('.empty').forEach((n) => n.remove());
      const data = [secs(d.t)].concat(parts.map((p) => d.lag[p]));
      lagEl.dataset.points = String(countPoints(data));
      plot('lag', lagEl, parts.join(','), (w) => baseOpts(w, 110, [{}].concat(parts.map((p, i) => line('lag ' + p, PALETTE[i % PALETTE.length], DASHES[Math.floor(i / PALETTE.length) % DASHES.length]))), {
        legend: { show: parts.length <= 8, live: false },
      }), data);
    }
    const el = $('commit-chart');
    if (d.t.length === 0) return empty('commits', el, 'no runtime data yet');
    el.querySelectorAll('.empty').forEach((n) => n.remove());
    const data = [secs(d.t), d.commitsPerSecond, d.stateBytes.map((b) => (b === null ? null : b / 1048576))];
    el.dataset.points = String(countPoints(data));
    plot('commits', el, 'commits', (w) => baseOpts(w, 110, [{}, line('commits/s', '#009E73'), line('state MiB', '#CC79A7', [6, 3], 'mib')], {
      axes: [{}, { size: 40 }, { scale: 'mib', side: 1, grid: { show: false }, size: 50 }],
    }), data);
  }

  function renderDeadLetters(d) {
    const rows = d.recent.map((r) => '<tr><td>' + time(r.at).slice(11) + '</td><td><b>' + esc(r.reason) + '</b></td><td>' + esc(r.topic) + '</td><td class="num">' + r.partition + '</td><td class="num">' + r.offset + '</td></tr>');
    $('dead-letter-table').innerHTML = rows.length === 0 ? '<div class="empty">no dead letters</div>'
      : '<table><thead><tr><th>when</th><th>reason</th><th>topic</th><th>part.</th><th>offset</th></tr></thead><tbody>' + rows.join('') + '</tbody></table>';
    $('dead-letter-table').dataset.rows = String(rows.length);
  }

  // ---------------------------------------------------------------- loop

  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const overview = await get('/api/v1/overview');
      const q = '?step=' + stepFor(overview);
      const [traffic, outcomes, delay, accuracy, runtime, ledger, dead] = await Promise.all([
        get('/api/v1/series/traffic' + q), get('/api/v1/series/outcomes' + q), get('/api/v1/series/label-delay' + q),
        get('/api/v1/series/accuracy' + q), get('/api/v1/series/runtime' + q), get('/api/v1/ledger'), get('/api/v1/dead-letters'),
      ]);
      renderOverview(overview);
      renderTraffic(traffic);
      renderOutcomes(outcomes);
      renderDelay(delay);
      renderAccuracy(accuracy);
      renderRuntime(runtime);
      renderLedger(ledger);
      renderDeadLetters(dead);
      $('status').textContent = 'updated ' + new Date().toLocaleTimeString() + ' · engine clock ' + time(overview.now) + ' · step ' + stepFor(overview) / 1000 + ' s';
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (err) {
      $('status').textContent = 'cannot reach the engine: ' + err.message;
    } finally {
      busy = false;
    }
  }

  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const c of charts.values()) c.plot.setSize({ width: widthOf(c.el), height: c.plot.height });
    }, 150);
  });

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
