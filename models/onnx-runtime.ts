import * as ort from 'onnxruntime-node';
import { ClosedError, ValidationError } from '../engine/errors.js';
import { argMax } from './logistic-regression.js';
import { METADATA_KEYS } from './onnx-export.js';
import { inspectOnnx } from './onnx-inspect.js';
import { ModelError } from './model-error.js';

export type OnnxInputType = 'float32' | 'float64';

export interface Prediction {
  label: string;
  /** Probability per class label. */
  scores: Record<string, number>;
}

export interface OnnxModel {
  /** From metadata `sampleloop.features` or the `featureNames` option; empty when the model does not say. */
  readonly featureNames: string[];
  readonly classes: string[];
  readonly inputName: string;
  readonly inputType: OnnxInputType;
  /** Width of the input when the graph fixes it. */
  readonly featureCount: number | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  /** One `session.run` for the whole batch; results in row order. */
  predictBatch(rows: Float64Array[] | number[][]): Promise<Prediction[]>;
  close(): Promise<void>;
}

export interface LoadOnnxOptions {
  /** Class labels in the order of the probability columns; wins over anything the model says. */
  classes?: string[];
  featureNames?: string[];
}

/** Settings for a stream processor: one thread per model, so partitions scale by processes, not by threads. */
export const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

const PROBABILITY_OUTPUT_NAMES = ['probabilities', 'output_probability', 'probability'];
const LABEL_OUTPUT_NAMES = ['label', 'output_label'];

/**
 * Loads a sampleloop-exported model or a classifier from skl2onnx (ZipMap or tensor probabilities,
 * float32 input) and runs it with onnxruntime-node.
 *
 * The label of a row is the class with the highest probability (the first on a tie); a model without a
 * probability output falls back to its label output.
 */
export async function loadOnnxModel(bytes: Uint8Array, options: LoadOnnxOptions = {}): Promise<OnnxModel> {
  const inspected = inspectOnnx(bytes);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(inspected.bytes, sessionOptions);
  } catch (err) {
    throw new ModelError(`onnxruntime could not load the model: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    return new OrtModel(session, inspected.metadata, describe(session, inspected, options));
  } catch (err) {
    await session.release();
    throw err;
  }
}

interface ModelShape {
  inputName: string;
  inputType: OnnxInputType;
  featureCount: number | undefined;
  featureNames: string[];
  classes: string[];
  probabilityOutput: string | undefined;
  labelOutput: string | undefined;
}

function describe(
  session: ort.InferenceSession,
  inspected: ReturnType<typeof inspectOnnx>,
  options: LoadOnnxOptions,
): ModelShape {
  const inputs = session.inputMetadata;
  const input = inputs[0];
  if (inputs.length !== 1 || !input) {
    throw new ModelError(`expected a model with exactly one input, got ${inputs.length} (${session.inputNames.join(', ')})`);
  }
  if (!input.isTensor || (input.type !== 'float32' && input.type !== 'float64')) {
    throw new ModelError(`input "${input.name}" must be a float32 or float64 tensor [N, F]`);
  }
  const width = input.shape[1];
  const featureCount = typeof width === 'number' && width > 0 ? width : undefined;

  const tensorOutputs = session.outputMetadata.filter((o): o is ort.InferenceSession.TensorValueMetadata => o.isTensor);
  const isFloat = (o: ort.InferenceSession.TensorValueMetadata): boolean => o.type === 'float32' || o.type === 'float64';
  const probability =
    tensorOutputs.find((o) => isFloat(o) && (PROBABILITY_OUTPUT_NAMES.includes(o.name) || inspected.unwrappedZipMapOutputs.includes(o.name))) ??
    tensorOutputs.find((o) => isFloat(o) && o.shape.length === 2);
  const label =
    tensorOutputs.find((o) => o !== probability && LABEL_OUTPUT_NAMES.includes(o.name)) ??
    tensorOutputs.find((o) => o !== probability && (o.type === 'string' || o.type === 'int64'));
  if (!probability && !label) throw new ModelError('model has neither a probability nor a label tensor output');

  const classColumns = probability && typeof probability.shape[1] === 'number' ? probability.shape[1] : undefined;
  const classes = options.classes ?? metadataList(inspected.metadata, METADATA_KEYS.classes) ?? inspected.graphClasses ?? indexLabels(classColumns);
  if (probability && classes === undefined) {
    throw new ModelError(`cannot tell the class labels of output "${probability.name}": pass the classes option`);
  }
  if (classColumns !== undefined && classes !== undefined && classes.length !== classColumns) {
    throw new ModelError(`model has ${classColumns} probability columns but ${classes.length} class labels`);
  }
  const featureNames = options.featureNames ?? metadataList(inspected.metadata, METADATA_KEYS.features) ?? [];
  if (featureCount !== undefined && featureNames.length > 0 && featureNames.length !== featureCount) {
    throw new ModelError(`model input has ${featureCount} features but ${featureNames.length} feature names`);
  }
  return {
    inputName: input.name,
    inputType: input.type,
    featureCount,
    featureNames,
    classes: classes ?? [],
    probabilityOutput: probability?.name,
    labelOutput: label?.name,
  };
}

class OrtModel implements OnnxModel {
  readonly featureNames: string[];
  readonly classes: string[];
  readonly inputName: string;
  readonly inputType: OnnxInputType;
  readonly featureCount: number | undefined;
  private closed = false;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly shape: ModelShape,
  ) {
    this.featureNames = shape.featureNames;
    this.classes = shape.classes;
    this.inputName = shape.inputName;
    this.inputType = shape.inputType;
    this.featureCount = shape.featureCount;
  }

  async predictBatch(rows: Float64Array[] | number[][]): Promise<Prediction[]> {
    if (this.closed) throw new ClosedError('predictBatch on a closed OnnxModel');
    if (rows.length === 0) return [];
    const width = this.featureCount ?? rows[0]?.length ?? 0;
    const data = this.inputType === 'float32' ? new Float32Array(rows.length * width) : new Float64Array(rows.length * width);
    rows.forEach((row: ArrayLike<number>, i: number) => {
      if (row.length !== width) {
        throw new ValidationError('feature_count', `row ${i} has ${row.length} features, the model expects ${width}`);
      }
      for (let j = 0; j < width; j++) data[i * width + j] = row[j] as number;
    });
    const feeds = { [this.inputName]: new ort.Tensor(this.inputType, data, [rows.length, width]) };
    const fetch = this.shape.probabilityOutput ?? this.shape.labelOutput;
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.session.run(feeds, [fetch as string]);
    } catch (err) {
      throw new ModelError(`model run failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const output = result[fetch as string];
    if (!output) throw new ModelError(`model returned no "${fetch}" output`);
    return this.shape.probabilityOutput ? this.fromProbabilities(output, rows.length) : fromLabels(output, rows.length);
  }

  private fromProbabilities(output: ort.Tensor, rowCount: number): Prediction[] {
    const values = output.data as Float32Array | Float64Array;
    const classCount = this.classes.length;
    if (values.length !== rowCount * classCount) {
      throw new ModelError(`probability output has ${values.length} values, expected ${rowCount} × ${classCount}`);
    }
    const predictions: Prediction[] = [];
    for (let i = 0; i < rowCount; i++) {
      const row = values.subarray(i * classCount, (i + 1) * classCount);
      const scores: Record<string, number> = {};
      this.classes.forEach((label, c) => {
        scores[label] = row[c] as number;
      });
      predictions.push({ label: this.classes[argMax(row)] as string, scores });
    }
    return predictions;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}

function fromLabels(output: ort.Tensor, rowCount: number): Prediction[] {
  const labels = Array.from(output.data as ArrayLike<string | bigint>, (v) => String(v));
  if (labels.length !== rowCount) throw new ModelError(`label output has ${labels.length} values, expected ${rowCount}`);
  return labels.map((label) => ({ label, scores: {} }));
}

function metadataList(metadata: Record<string, string>, key: string): string[] | undefined {
  const raw = metadata[key];
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new ModelError(`metadata ${key} is not JSON`, { cause: err });
  }
  if (!Array.isArray(parsed) || !parsed.every((v): v is string => typeof v === 'string')) {
    throw new ModelError(`metadata ${key} must be a JSON array of strings`);
  }
  return parsed;
}

function indexLabels(count: number | undefined): string[] | undefined {
  return count === undefined ? undefined : Array.from({ length: count }, (_, i) => String(i));
}
