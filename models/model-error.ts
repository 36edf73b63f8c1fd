import { SampleloopError, type ErrorOptions } from '../engine/errors.js';

/**
 * A model could not be trained, exported, loaded or run (code SL_MODEL). Not retriable by default:
 * the same bytes or the same inputs fail the same way.
 */
export class ModelError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_MODEL', message, options);
  }
}
