/**
 * One small error hierarchy: every error has a stable `code` (documented in docs/errors.md)
 * and a `retriable` flag telling the caller whether trying the same thing again can succeed.
 */
export type ErrorCode =
  | 'SL_CONFIG'
  | 'SL_DECODE'
  | 'SL_VALIDATION'
  | 'SL_STATE'
  | 'SL_LOG'
  | 'SL_TOPOLOGY'
  | 'SL_SCHEMA'
  | 'SL_MODEL'
  | 'SL_LEDGER'
  | 'SL_KAFKA'
  | 'SL_USAGE'
  | 'SL_CLOSED';

export interface ErrorOptions {
  retriable?: boolean;
  cause?: unknown;
}

export class SampleloopError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Configuration is invalid: the message says which setting and how to fix it. */
export class ConfigError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_CONFIG', message, options);
  }
}

/** The topology is wired wrongly (unknown store, missing child, cycle...). */
export class TopologyError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_TOPOLOGY', message, options);
  }
}

/** Bytes could not be decoded into a record. Such records go to the dead-letter topic. */
export class DecodeError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_DECODE', message, options);
  }
}

/** A decoded record breaks a rule of its schema (missing requestId, NaN feature...). */
export class ValidationError extends SampleloopError {
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super('SL_VALIDATION', message, options);
    this.reason = reason;
  }
}

export class StateError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_STATE', message, options);
  }
}

export class LogError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_LOG', message, options);
  }
}

export class SchemaError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_SCHEMA', message, options);
  }
}

export class UsageError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_USAGE', message, options);
  }
}

export class ClosedError extends SampleloopError {
  constructor(message: string) {
    super('SL_CLOSED', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
