import { ModelError } from './model-error.js';
import { onnx, type OnnxTypes } from './onnx-proto.js';

export interface InspectedModel {
  /** The bytes to hand to onnxruntime: the input itself, or a copy with ZipMap outputs unwrapped. */
  bytes: Uint8Array;
  /** The model's metadata_props. */
  metadata: Record<string, string>;
  /**
   * Class labels named by the graph itself: ZipMap keys, an ai.onnx.ml classifier's labels, or the constant
   * class list a label output picks from with ArrayFeatureExtractor (skl2onnx's graph without ai.onnx.ml
   * operators, e.g. a double-input LogisticRegression).
   */
  graphClasses?: string[];
  /** Graph outputs that carried a ZipMap and now carry its input, a float tensor [N, C]. */
  unwrappedZipMapOutputs: string[];
}

const utf8 = new TextDecoder();

/**
 * Reads what onnxruntime-node does not expose (metadata_props, class labels) and works around what it
 * cannot return: a ZipMap output (sequence<map<label, float>>, skl2onnx's default) fails in
 * onnxruntime-node with "Non tensor type is temporarily not supported", so each ZipMap node that feeds a
 * graph output is dropped and its input tensor becomes that output. Its keys become the class labels.
 *
 * The copy is re-encoded with the ONNX 1.10 schema of the onnx-proto package, so fields newer than
 * that (e.g. per-node metadata) are dropped from rewritten models; inference does not use them.
 */
export function inspectOnnx(bytes: Uint8Array): InspectedModel {
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError('not an ONNX model: its bytes do not decode as onnx.ModelProto', { cause: err });
  }
  const graph = model.graph;
  if (!graph) throw new ModelError('ONNX model has no graph');

  const metadata: Record<string, string> = {};
  for (const prop of model.metadataProps) {
    if (prop.key) metadata[prop.key] = prop.value ?? '';
  }

  let graphClasses = classLabelsOf(graph.node, 'ZipMap');
  const unwrapped = unwrapZipMaps(graph);
  graphClasses ??= classLabelsOf(graph.node);
  graphClasses ??= labelOutputClasses(graph);

  const result: InspectedModel = {
    bytes: unwrapped.length > 0 ? onnx.ModelProto.encode(model).finish() : bytes,
    metadata,
    unwrappedZipMapOutputs: unwrapped,
  };
  if (graphClasses) result.graphClasses = graphClasses;
  return result;
}

function unwrapZipMaps(graph: OnnxTypes.IGraphProto): string[] {
  const unwrapped: string[] = [];
  const outputs = graph.output ?? [];
  const outputIndex = new Map(outputs.map((o, i) => [o.name ?? '', i]));
  graph.node = (graph.node ?? []).filter((node) => {
    if (node.opType !== 'ZipMap') return true;
    const index = outputIndex.get(node.output?.[0] ?? '');
    const source = node.input?.[0];
    if (index === undefined || source === undefined) return true;
    outputs[index] = onnx.ValueInfoProto.create({
      name: source,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } },
    });
    unwrapped.push(source);
    return false;
  });
  return unwrapped;
}

/** `classlabels_strings` / `classlabels_int64s` / `classlabels_ints` of the first node that has them. */
function classLabelsOf(nodes: OnnxTypes.INodeProto[] | null | undefined, opType?: string): string[] | undefined {
  for (const node of nodes ?? []) {
    if (opType !== undefined && node.opType !== opType) continue;
    for (const attr of node.attribute ?? []) {
      if (attr.name === 'classlabels_strings' && attr.strings && attr.strings.length > 0) {
        return attr.strings.map((s) => utf8.decode(s));
      }
      if ((attr.name === 'classlabels_int64s' || attr.name === 'classlabels_ints') && attr.ints && attr.ints.length > 0) {
        return attr.ints.map((i) => String(i));
      }
    }
  }
  return undefined;
}

const LABEL_OUTPUTS = new Set(['label', 'output_label']);
const PASS_THROUGH = new Set(['Reshape', 'Cast', 'Identity', 'Squeeze', 'Flatten']);

/**
 * The class list behind a label output computed as `ArrayFeatureExtractor(classes, ArgMax(scores))`
 * (through Reshape / Cast / Identity / Squeeze / Flatten), `classes` being a constant string or integer
 * tensor: its entries are the labels of the score columns, in column order.
 */
function labelOutputClasses(graph: OnnxTypes.IGraphProto): string[] | undefined {
  const producers = new Map<string, OnnxTypes.INodeProto>();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) producers.set(out, node);
  const constants = new Map<string, OnnxTypes.ITensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) constants.set(t.name, t);
  for (const node of graph.node ?? []) {
    if (node.opType !== 'Constant') continue;
    const value = (node.attribute ?? []).find((a) => a.name === 'value')?.t;
    const out = node.output?.[0];
    if (value && out) constants.set(out, value);
  }
  for (const output of graph.output ?? []) {
    if (!LABEL_OUTPUTS.has(output.name ?? '')) continue;
    let name = output.name ?? '';
    for (let depth = 0; depth < 8; depth++) {
      const node = producers.get(name);
      if (!node) break;
      if (node.opType === 'ArrayFeatureExtractor') {
        const tensor = constants.get(node.input?.[0] ?? '');
        return tensor ? tensorLabels(tensor) : undefined;
      }
      if (!PASS_THROUGH.has(node.opType ?? '')) break;
      name = node.input?.[0] ?? '';
    }
  }
  return undefined;
}

function tensorLabels(t: OnnxTypes.ITensorProto): string[] | undefined {
  const { DataType } = onnx.TensorProto;
  if (t.dataType === DataType.STRING && t.stringData && t.stringData.length > 0) return t.stringData.map((s) => utf8.decode(s));
  if (t.dataType === DataType.INT64 || t.dataType === DataType.INT32) {
    if (t.int64Data && t.int64Data.length > 0) return t.int64Data.map((i) => String(i));
    if (t.int32Data && t.int32Data.length > 0) return t.int32Data.map((i) => String(i));
    const raw = t.rawData;
    if (raw && raw.length > 0) {
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const labels: string[] = [];
      if (t.dataType === DataType.INT64) for (let o = 0; o + 8 <= raw.length; o += 8) labels.push(String(view.getBigInt64(o, true)));
      else for (let o = 0; o + 4 <= raw.length; o += 4) labels.push(String(view.getInt32(o, true)));
      return labels.length > 0 ? labels : undefined;
    }
  }
  return undefined;
}
