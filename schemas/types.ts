/**
 * TypeScript mirrors of the Avro schemas in this directory (field for field, same order).
 * `long` timestamps are milliseconds since the Unix epoch as JS numbers; `bytes` are Buffers.
 */
import type { DeadLetterEnvelope } from '../engine/task.js';

export interface Request {
  requestId: string;
  category: string;
  features: Record<string, number>;
  attributes: Record<string, string>;
  timestamp: number;
  source: string;
}

export interface Prediction {
  requestId: string;
  category: string;
  features: Record<string, number>;
  attributes: Record<string, string>;
  predictedLabel: string;
  scores: Record<string, number>;
  modelVersion: string;
  modelHash: string;
  requestTimestamp: number;
  timestamp: number;
}

export interface Feedback {
  requestId: string;
  timestamp: number;
  source: string;
  actualLabel: string | null;
  correct: boolean | null;
}

export type LabelSource = 'CONFIRMED' | 'CORRECTED' | 'DEFAULT';

export type SampleOrigin = 'online' | 'replay';

export interface LabeledSample {
  requestId: string;
  category: string;
  features: Record<string, number>;
  attributes: Record<string, string>;
  label: string;
  labelSource: LabelSource;
  predictedLabel: string;
  modelVersion: string;
  requestTimestamp: number;
  feedbackTimestamp: number | null;
  revision: number;
  origin: SampleOrigin;
}

export interface UnmatchedPrediction {
  prediction: Prediction;
  reason: string;
  closedAt: number;
}

export interface OrphanFeedback {
  feedback: Feedback;
  reason: string;
  predictionTimestamp: number | null;
  closedAt: number;
}

export type LateKind = 'PREDICTION' | 'FEEDBACK';

export interface LateRecord {
  kind: LateKind;
  requestId: string;
  recordTimestamp: number;
  streamTime: number;
  closeTime: number;
  prediction: Prediction | null;
  feedback: Feedback | null;
}

export interface ReviewRecord {
  prediction: Prediction;
  feedback: Feedback;
  reason: string;
}

/** The DeadLetter Avro record is the engine's dead-letter envelope (engine/task.ts), field for field. */
export type DeadLetter = DeadLetterEnvelope;

export interface TrainingSnapshot {
  topic: string;
  offsets: Array<{ partition: number; offset: number }>;
  sampleCount: number;
}

export interface ModelVersion {
  category: string;
  version: string;
  sequence: number;
  createdAt: number;
  onnx: Buffer | null;
  onnxUri: string | null;
  modelSha256: string;
  featureNames: string[];
  classes: string[];
  metrics: Record<string, number>;
  trainingSnapshot: TrainingSnapshot | null;
  trainer: string;
  prevRecordHash: string;
  recordHash: string;
  /** The publisher's Ed25519 public key (base64 of the 32 raw bytes); null or absent when unsigned. */
  signer?: string | null;
  /** Base64 Ed25519 signature over the record hash (models/ledger/signing.ts); null or absent when unsigned. */
  signature?: string | null;
}

export interface RetrainTrigger {
  triggerId: string;
  category: string;
  reason: string;
  details: Record<string, number>;
  servingVersion: string;
  snapshot: TrainingSnapshot;
  createdAt: number;
  /** feature-drift triggers: the features whose PSI exceeded the threshold, highest first; empty otherwise. */
  driftedFeatures?: Array<{ feature: string; psi: number }>;
}

/** Maps each schema name to the TS type of its records. */
export interface SchemaValueTypes {
  Request: Request;
  Prediction: Prediction;
  Feedback: Feedback;
  LabeledSample: LabeledSample;
  UnmatchedPrediction: UnmatchedPrediction;
  OrphanFeedback: OrphanFeedback;
  LateRecord: LateRecord;
  ReviewRecord: ReviewRecord;
  DeadLetter: DeadLetter;
  TrainingSnapshot: TrainingSnapshot;
  ModelVersion: ModelVersion;
  RetrainTrigger: RetrainTrigger;
}
