import type { Logger } from "../shared/logger";

/** Per-row warning lines per file and invocation: enough to see what went wrong, never a flood. */
export const MAX_ROW_LOGS = 20;

/**
 * The one cap on per-row warning lines (rejected, skipped, accepted with a warning).
 * The report counts every row; the log only shows the first few.
 */
export class RowLog {
  private written = 0;

  constructor(
    private readonly logger: Logger,
    private readonly cap = MAX_ROW_LOGS,
  ) {}

  warn(message: string, fields: Record<string, unknown>): void {
    if (this.written >= this.cap) return;
    this.written++;
    this.logger.warn(message, fields);
  }
}
