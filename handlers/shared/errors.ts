/**
 * One base class for every failure mode this project names, with structured context
 * that goes into the log line and the run report. Branch with `instanceof`.
 */
export class TrackingSyncError extends Error {
  readonly context: Record<string, unknown>;

  constructor(message: string, context: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.context = context;
  }
}

/** A required environment variable is missing or malformed (thrown at cold start). */
export class ConfigurationError extends TrackingSyncError {}
