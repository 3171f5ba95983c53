/**
 * Graceful shutdown and process ownership for entry files.
 *
 * - {@link ShutdownRegistry}: resources register a close function as they are acquired; `run()`
 *   closes them in reverse order, each bounded by the overall deadline.
 * - {@link installSignalHandlers}: the one SIGTERM/SIGINT policy of every entry.
 * - {@link runEntry}: the one way an entry's `main` ends the process (exit codes, the error line).
 *
 * Nothing here reaches for the global `process`: an entry file hands it over as a
 * {@link ProcessHost}, so only entry files own signals and exit (test/architecture.test.ts).
 */
import { isInfrastructureError } from './infrastructure.js';
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

/** The part of `process` an entry file hands to {@link installSignalHandlers} and {@link runEntry}. */
export interface ProcessHost {
  on(event: 'SIGTERM' | 'SIGINT', listener: (signal: NodeJS.Signals) => void): unknown;
  exit(code: number): never;
  stderr: { write(text: string): unknown };
}

/** Options of {@link installSignalHandlers}. */
export interface SignalHandlerOptions {
  logger: Logger;
  /** Deadline for closing everything after the first signal, in milliseconds (`SHUTDOWN_TIMEOUT_MS`). */
  timeoutMs: number;
  /**
   * Exit code after a clean shutdown: 0 for a server (a signal is how it is meant to stop), 130
   * for a one-shot command that was interrupted. An unclean shutdown exits 1.
   */
  cleanExitCode?: number;
}

/** Exit code for a second signal: stop now (128 + SIGINT, the shell's convention). */
export const SECOND_SIGNAL_EXIT_CODE = 130;

/**
 * Install the shutdown policy for SIGTERM and SIGINT. The first signal logs `shutting down`,
 * runs `registry` within `timeoutMs` and exits with `cleanExitCode` (default 0) when everything
 * closed in time, 1 otherwise. A second signal exits {@link SECOND_SIGNAL_EXIT_CODE} at once.
 */
export function installSignalHandlers(
  host: ProcessHost,
  registry: Pick<ShutdownRegistry, 'run'>,
  options: SignalHandlerOptions,
): void {
  const { logger, timeoutMs, cleanExitCode = 0 } = options;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      host.exit(SECOND_SIGNAL_EXIT_CODE);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void registry.run(timeoutMs).then((clean) => host.exit(clean ? cleanExitCode : 1));
  };
  host.on('SIGTERM', stop);
  host.on('SIGINT', stop);
}

/** The part of `process` {@link guardUnhandledRejections} needs. */
export interface RejectionHost {
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  exit(code: number): never;
}

/**
 * A server's policy for a promise rejected with no handler. One rejected by an infrastructure
 * failure (`isInfrastructureError`: a Postgres or Redis connection closed, refused or reset) is
 * logged at `error` with its stack — a handler is missing somewhere, which is a bug — and the
 * process keeps running: the work it belonged to is re-delivered (at-least-once) or answered 503,
 * and a database restart must not take `web` or a worker down (README, *Faults of
 * infrastructure*). Any other unhandled rejection is logged at `fatal` and exits 1, as Node would.
 */
export function guardUnhandledRejections(host: RejectionHost, logger: Logger): void {
  host.on('unhandledRejection', (reason) => {
    if (isInfrastructureError(reason)) {
      logger.error({ err: reason }, 'unhandled rejection from an infrastructure failure (a missing handler); the process keeps running');
      return;
    }
    logger.fatal({ err: reason }, 'unhandled rejection; exiting');
    host.exit(1);
  });
}

/** Options of {@link runEntry}. */
export interface RunEntryOptions {
  /**
   * Exit 0 as soon as `main` resolves (one-shot commands, which may leave pools and timers
   * behind). Servers leave it off: their `main` resolves once they serve, and they end through
   * {@link installSignalHandlers}.
   */
  exitOnSuccess?: boolean;
  /** Exit 2 with `<name>: timed out after N s` if `main` has not settled by then, in milliseconds. */
  deadlineMs?: number;
}

/**
 * Run an entry's `main`. When it rejects, write `<name>: <message>` to stderr and exit 1 (the
 * message of an `Error`, or the thrown value as text); see {@link RunEntryOptions} for success
 * and deadlines.
 */
export function runEntry(host: ProcessHost, name: string, main: () => Promise<void | number>, options: RunEntryOptions = {}): void {
  if (options.deadlineMs !== undefined) {
    const seconds = options.deadlineMs / 1000;
    setTimeout(() => {
      host.stderr.write(`${name}: timed out after ${seconds} s\n`);
      host.exit(2);
    }, options.deadlineMs).unref();
  }
  main().then(
    (code) => {
      if (options.exitOnSuccess) host.exit(typeof code === 'number' ? code : 0);
    },
    (err: unknown) => {
      host.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      host.exit(1);
    },
  );
}
