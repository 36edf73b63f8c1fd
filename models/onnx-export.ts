import { createHash } from 'node:crypto';
import { ModelError } from './model-error.js';
import type { LogisticModel } from './logistic-regression.js';
import { onnx, type OnnxTypes } from './onnx-proto.js';

/** ai.onnx opset of the exported graph; onnxruntime-node 1.30 runs it. */
export const EXPORT_OPSET = 21;
/** IR version that goes with opset 21 (ONNX 1.16). */
export const EXPORT_IR_VERSION = 10;

export const INPUT_NAME = 'features';
export const PROBABILITIES_OUTPUT = 'probabilities';
export const LABEL_OUTPUT = 'label';

/** metadata_props keys written into every exported model. */
export const METADATA_KEYS = {
  classes: 'sampleloop.classes',
  features: 'sampleloop.features',
  category: 'sampleloop.category',
  version: 'sampleloop.version',
  trainer: 'sampleloop.trainer',
} as const;

export interface ExportMeta {
  version: string;
  category: string;
}

const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

/**
 * The trained model as an ONNX graph computing exactly what `predictProba` computes, in double:
 *
 *   features[N,F] → Sub(mean) → Div(scale) → Gemm(weightsᵀ, bias) → Softmax → probabilities[N,C]
 *                                                                  → ArgMax → label[N] (class index, int64)
 *
 * Nothing time- or machine-dependent goes in, so the same model always encodes to the same bytes.
 */
export function exportOnnx(model: LogisticModel, meta: ExportMeta): Uint8Array {
  const featureCount = model.featureNames.length;
  const classCount = model.classes.length;
  checkShapes(model, featureCount, classCount);

  const graph: OnnxTypes.IGraphProto = {
    name: `sampleloop_logistic_${sanitize(meta.category)}`,
    input: [tensorInfo(INPUT_NAME, DataType.DOUBLE, ['N', featureCount])],
    output: [
      tensorInfo(PROBABILITIES_OUTPUT, DataType.DOUBLE, ['N', classCount]),
      tensorInfo(LABEL_OUTPUT, DataType.INT64, ['N']),
    ],
    initializer: [
      doubleTensor('mean', [featureCount], model.mean),
      doubleTensor('scale', [featureCount], model.scale),
      doubleTensor('weights', [classCount, featureCount], model.weights),
      doubleTensor('bias', [classCount], model.bias),
    ],
    node: [
      node('Sub', [INPUT_NAME, 'mean'], ['centered']),
      node('Div', ['centered', 'scale'], ['standardized']),
      node('Gemm', ['standardized', 'weights', 'bias'], ['logits'], [intAttribute('transB', 1)]),
      node('Softmax', ['logits'], [PROBABILITIES_OUTPUT], [intAttribute('axis', 1)]),
      node('ArgMax', [PROBABILITIES_OUTPUT], [LABEL_OUTPUT], [intAttribute('axis', 1), intAttribute('keepdims', 0)]),
    ],
  };

  const modelProto: OnnxTypes.IModelProto = {
    irVersion: EXPORT_IR_VERSION,
    opsetImport: [{ domain: '', version: EXPORT_OPSET }],
    producerName: 'sampleloop',
    docString: 'Multinomial logistic regression trained by sampleloop. Output "label" is an index into sampleloop.classes.',
    graph,
    metadataProps: [
      { key: METADATA_KEYS.classes, value: JSON.stringify(model.classes) },
      { key: METADATA_KEYS.features, value: JSON.stringify(model.featureNames) },
      { key: METADATA_KEYS.category, value: meta.category },
      { key: METADATA_KEYS.version, value: meta.version },
      { key: METADATA_KEYS.trainer, value: 'logistic-regression' },
    ],
  };
  return onnx.ModelProto.encode(modelProto).finish();
}

/** Lower-case hex SHA-256 of the model bytes: the model's identity in logs and the ledger. */
export function modelSha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function checkShapes(model: LogisticModel, featureCount: number, classCount: number): void {
  const expect = (what: string, actual: number, wanted: number): void => {
    if (actual !== wanted) throw new ModelError(`exportOnnx: ${what} has ${actual} values, expected ${wanted}`);
  };
  if (featureCount === 0 || classCount === 0) throw new ModelError('exportOnnx: model has no features or no classes');
  expect('mean', model.mean.length, featureCount);
  expect('scale', model.scale.length, featureCount);
  expect('weights', model.weights.length, classCount * featureCount);
  expect('bias', model.bias.length, classCount);
}

function sanitize(text: string): string {
  return text.replace(/[^A-Za-z0-9_]/g, '_');
}

function tensorInfo(name: string, elemType: number, dims: Array<string | number>): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

/** Little-endian raw bytes whatever the host's byte order, as the ONNX spec requires. */
function doubleTensor(name: string, dims: number[], values: Float64Array): OnnxTypes.ITensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat64(i * 8, v, true));
  return { name, dims, dataType: DataType.DOUBLE, rawData: raw };
}

function intAttribute(name: string, value: number): OnnxTypes.IAttributeProto {
  return { name, type: AttributeType.INT, i: value };
}

function node(
  opType: string,
  input: string[],
  output: string[],
  attribute: OnnxTypes.IAttributeProto[] = [],
): OnnxTypes.INodeProto {
  return { opType, input, output, attribute, name: `${opType.toLowerCase()}_${output[0] ?? ''}` };
}
