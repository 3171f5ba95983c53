/**
 * Graceful shutdown registry. Resources register a close function as they are acquired;
 * `run()` closes them in reverse order, each bounded by the overall deadline.
 * Only entry files install signal handlers (see `installSignalHandlers`).
 */
import type { Logger } from './logger.js';

type Closer = () => Promise<unknown>;

export class ShutdownRegistry {
  private readonly closers: Array<{ name: string; close: Closer }> = [];
  private running: Promise<boolean> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Register a resource to close; closers run in reverse registration order. */
  register(name: string, close: Closer): void {
    this.closers.push({ name, close });
  }

  /**
   * Close everything, newest first. Idempotent: a second call returns the same promise.
   * @param timeoutMs - overall deadline; resources still closing when it passes are abandoned.
   * @returns `true` when every closer finished in time and without error.
   */
  run(timeoutMs: number): Promise<boolean> {
    this.running ??= this.closeAll(timeoutMs);
    return this.running;
  }

  private async closeAll(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let clean = true;
    for (const { name, close } of [...this.closers].reverse()) {
      const remainingMs = Math.max(0, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), remainingMs);
      });
      try {
        const outcome = await Promise.race([close().then(() => 'closed' as const), timeout]);
        if (outcome === 'timeout') {
          clean = false;
          this.logger.warn({ resource: name }, 'shutdown deadline passed while closing');
        }
      } catch (err) {
        clean = false;
        this.logger.error({ err, resource: name }, 'close failed');
      } finally {
        clearTimeout(timer);
      }
    }
    return clean;
  }
}
