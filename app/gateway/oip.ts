/**
 * The Open Inference Protocol (KServe V2) as the gateway speaks it: the JSON schema of an inference
 * request, its reading into feature rows for one model, and the response. Named inputs are features
 * (one tensor per feature, shape [N] or [N, 1]: N rows); `parameters` may carry `requestId` and
 * `attributes`. Every error names the field it is about and never echoes a value.
 */
import type { ServedModel } from '../../models/model-registry.js';

export const NUMERIC_DATATYPES = ['FP16', 'FP32', 'FP64', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64'] as const;
const INTEGER_DATATYPES: ReadonlySet<string> = new Set(['INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64']);
const UNSIGNED_DATATYPES: ReadonlySet<string> = new Set(['UINT8', 'UINT16', 'UINT32', 'UINT64']);
export const ALL_DATATYPES = ['BOOL', ...NUMERIC_DATATYPES, 'BYTES'] as const;

export interface OipInput {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
  parameters?: Record<string, unknown>;
}

export interface OipInferRequest {
  id?: string;
  parameters?: { requestId?: string | string[]; attributes?: Record<string, string> | Array<Record<string, string>>; [key: string]: unknown };
  inputs: OipInput[];
  outputs?: Array<{ name: string; parameters?: Record<string, unknown> }>;
}

export interface OipOutput {
  name: string;
  shape: number[];
  datatype: 'BYTES' | 'FP64';
  data: Array<string | number>;
  parameters?: Record<string, unknown>;
}

export interface OipInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: { requestIds: string[]; modelHash: string };
  outputs: OipOutput[];
}

export const OUTPUT_NAMES = ['label', 'scores', 'request_id'] as const;

const attributesSchema = { type: 'object', maxProperties: 256, additionalProperties: { type: 'string', maxLength: 4096 } } as const;
const requestIdSchema = { type: 'string', minLength: 1, maxLength: 256 } as const;

/** Structure only; what depends on the model (feature names, row counts) is checked by `readRows`. */
export function inferRequestSchema(maxRows: number, maxInputs: number): object {
  return {
    type: 'object',
    required: ['inputs'],
    additionalProperties: false,
    properties: {
      id: requestIdSchema,
      parameters: {
        type: 'object',
        properties: {
          requestId: { anyOf: [requestIdSchema, { type: 'array', maxItems: maxRows, items: requestIdSchema }] },
          attributes: { anyOf: [attributesSchema, { type: 'array', maxItems: maxRows, items: attributesSchema }] },
        },
      },
      inputs: {
        type: 'array',
        minItems: 1,
        maxItems: maxInputs,
        items: {
          type: 'object',
          required: ['name', 'shape', 'datatype', 'data'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 256 },
            shape: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'integer', minimum: 0 } },
            datatype: { type: 'string', enum: [...ALL_DATATYPES] },
            parameters: { type: 'object' },
            data: { type: 'array', maxItems: maxRows },
          },
        },
      },
      outputs: {
        type: 'array',
        maxItems: OUTPUT_NAMES.length,
        items: { type: 'object', required: ['name'], properties: { name: { type: 'string', enum: [...OUTPUT_NAMES] }, parameters: { type: 'object' } } },
      },
    },
  };
}

export class OipInputError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 = 400,
  ) {
    super(message);
  }
}

export interface ReadRows {
  rows: Float64Array[];
  /** Per row: the caller's request ID, or undefined to generate one. */
  requestIds: Array<string | undefined>;
  /** Per row: the raw attributes (protected by the privacy policy before they are written). */
  attributes: Array<Record<string, string>>;
  /** Per row: the features as given (name → value), defaults filled in. */
  features: Array<Record<string, number>>;
}

/**
 * The request's rows in the model's feature order. Missing features take the configured defaults
 * (`predictor.featureDefaults`); a feature without one, an input the model does not read, a
 * non-numeric datatype, a value that is not a finite number (or not an integer for INT types), or
 * inputs of different row counts are 400s naming the input.
 */
export function readRows(request: OipInferRequest, served: ServedModel, defaults: Readonly<Record<string, number>>, maxRows: number): ReadRows {
  const features = new Set(served.featureNames);
  let n: number | undefined;
  const columns = new Map<string, number[]>();
  request.inputs.forEach((input, i) => {
    const at = `inputs[${i}] "${input.name}"`;
    if (!features.has(input.name)) throw new OipInputError(`${at}: model ${served.category} version ${served.version} has no feature named so (features: ${list(served.featureNames)})`);
    if (columns.has(input.name)) throw new OipInputError(`${at}: the input is given twice`);
    if (!(NUMERIC_DATATYPES as readonly string[]).includes(input.datatype)) throw new OipInputError(`${at}: datatype ${input.datatype} is not numeric (features take ${NUMERIC_DATATYPES.join(', ')})`);
    const rows = input.shape[0] as number;
    if (input.shape.length === 2 && input.shape[1] !== 1) throw new OipInputError(`${at}: shape [${input.shape.join(', ')}] is not [N] or [N, 1] (one input per feature, one value per row)`);
    const values = flatten(input.data, at);
    if (values.length !== rows) throw new OipInputError(`${at}: shape [${input.shape.join(', ')}] says ${rows} value(s), data has ${values.length}`);
    values.forEach((v, r) => {
      if (typeof v !== 'number') throw new OipInputError(`${at}: data[${r}] is not a number (datatype ${input.datatype})`);
      if (!Number.isFinite(v)) throw new OipInputError(`${at}: data[${r}] is not a finite number`);
      if (INTEGER_DATATYPES.has(input.datatype) && !Number.isInteger(v)) throw new OipInputError(`${at}: data[${r}] is not an integer (datatype ${input.datatype})`);
      if (UNSIGNED_DATATYPES.has(input.datatype) && v < 0) throw new OipInputError(`${at}: data[${r}] is negative (datatype ${input.datatype})`);
    });
    if (n !== undefined && rows !== n) throw new OipInputError(`${at}: ${rows} row(s), but the inputs before it have ${n}`);
    n = rows;
    columns.set(input.name, values as number[]);
  });
  const count = n ?? 0;
  if (count === 0) throw new OipInputError('inputs: no rows (shape [0])');
  if (count > maxRows) throw new OipInputError(`inputs: ${count} rows, more than gateway.maxRowsPerRequest (${maxRows})`);
  const missing = served.featureNames.filter((name) => !columns.has(name) && defaults[name] === undefined);
  if (missing.length > 0) throw new OipInputError(`inputs: model ${served.category} version ${served.version} needs feature(s) the request lacks and that have no configured default: ${list(missing)}`);

  const requestIds = perRow(request.parameters?.requestId ?? (count === 1 ? request.id : undefined), count, 'parameters.requestId');
  const seen = new Set<string>();
  requestIds.forEach((id, r) => {
    if (id === undefined) return;
    if (seen.has(id)) throw new OipInputError(`parameters.requestId[${r}]: the same request ID is given twice in one call`);
    seen.add(id);
  });
  const attributes = perRow(request.parameters?.attributes, count, 'parameters.attributes').map((a) => a ?? {});
  const rows: Float64Array[] = [];
  const given: Array<Record<string, number>> = [];
  for (let r = 0; r < count; r++) {
    const row = new Float64Array(served.featureNames.length);
    const named: Record<string, number> = {};
    served.featureNames.forEach((name, j) => {
      const value = columns.get(name)?.[r] ?? (defaults[name] as number);
      row[j] = value;
      named[name] = value;
    });
    rows.push(row);
    given.push(named);
  }
  return { rows, requestIds, attributes, features: given };
}

/** A parameter given once (applies to a single row) or as an array of one value per row. */
function perRow<T>(value: T | T[] | undefined, rows: number, field: string): Array<T | undefined> {
  if (value === undefined) return new Array<T | undefined>(rows).fill(undefined);
  if (Array.isArray(value)) {
    if (value.length !== rows) throw new OipInputError(`${field}: ${value.length} value(s) for ${rows} row(s)`);
    return value;
  }
  if (rows !== 1 && field === 'parameters.requestId') throw new OipInputError(`${field}: one ID for ${rows} rows; give an array of one ID per row`);
  return new Array<T | undefined>(rows).fill(value);
}

/** Row-major data: flat, or one nested level for shape [N, 1]. */
function flatten(data: unknown[], at: string): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  for (const [r, v] of data.entries()) {
    if (!Array.isArray(v)) out.push(v);
    else if (v.some(Array.isArray)) throw new OipInputError(`${at}: data[${r}] is nested more than one level`);
    else out.push(...(v as unknown[]));
  }
  return out;
}

function list(names: readonly string[]): string {
  return names.slice(0, 20).join(', ') + (names.length > 20 ? `, ... (${names.length} in all)` : '');
}

/** The OIP response: label (BYTES [N]), scores (FP64 [N, C], classes in the output's parameters), request_id (BYTES [N]). */
export function inferResponse(
  served: ServedModel,
  callId: string,
  requestIds: string[],
  results: ReadonlyArray<{ label: string; scores: Record<string, number> }>,
  requested: ReadonlyArray<{ name: string }> | undefined,
): OipInferResponse {
  const n = results.length;
  const classes = served.classes;
  const all: OipOutput[] = [
    { name: 'label', shape: [n], datatype: 'BYTES', data: results.map((p) => p.label) },
    { name: 'scores', shape: [n, classes.length], datatype: 'FP64', data: results.flatMap((p) => classes.map((c) => p.scores[c] ?? 0)), parameters: { classes: [...classes] } },
    { name: 'request_id', shape: [n], datatype: 'BYTES', data: requestIds },
  ];
  const wanted = requested && requested.length > 0 ? new Set(requested.map((o) => o.name)) : undefined;
  return {
    model_name: served.category,
    model_version: served.version,
    id: callId,
    parameters: { requestIds, modelHash: served.modelSha256 },
    outputs: wanted ? all.filter((o) => wanted.has(o.name)) : all,
  };
}

/** `GET /v2/models/{category}`: the serving version's inputs (one FP64 tensor per feature), outputs and platform. */
export function modelMetadata(served: ServedModel): object {
  return {
    name: served.category,
    versions: [served.version],
    platform: 'onnxruntime_onnx',
    inputs: served.featureNames.map((name) => ({ name, datatype: 'FP64', shape: [-1] })),
    outputs: [
      { name: 'label', datatype: 'BYTES', shape: [-1] },
      { name: 'scores', datatype: 'FP64', shape: [-1, served.classes.length] },
      { name: 'request_id', datatype: 'BYTES', shape: [-1] },
    ],
    parameters: { classes: [...served.classes], modelHash: served.modelSha256, sequence: served.sequence },
  };
}
