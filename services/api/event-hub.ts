/**
 * Wakes SSE streams when run events commit. One Postgres `LISTEN baton_run_events` per API
 * process (the trigger in migration 0001 NOTIFYs `<runId>:<seq>` at commit); streams subscribe
 * per run id. Any API instance serves any run, because every instance hears every commit.
 */
import { EventEmitter } from 'node:events';
import type { Sql } from 'postgres';
import type { Logger } from '../../lib/index.js';

/** Emitter channel of every run's events (never a run id). */
const ANY_RUN = '*';

export class RunEventHub {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly logger: Logger,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Start listening (resolves once LISTEN is active). */
  async start(): Promise<void> {
    const request = await this.sql.listen('baton_run_events', (payload) => {
      const runId = payload.split(':', 1)[0];
      if (runId) {
        this.emitter.emit(runId);
        this.emitter.emit(ANY_RUN, runId);
      }
    });
    this.unlisten = () => request.unlisten();
    this.logger.debug('listening for run events');
  }

  /** Call `onEvent(runId)` whenever an event of any run commits; returns the unsubscribe function. */
  subscribeAll(onEvent: (runId: string) => void): () => void {
    this.emitter.on(ANY_RUN, onEvent);
    return () => this.emitter.off(ANY_RUN, onEvent);
  }

  /** Call `onEvent` whenever an event of `runId` commits; returns the unsubscribe function. */
  subscribe(runId: string, onEvent: () => void): () => void {
    this.emitter.on(runId, onEvent);
    return () => this.emitter.off(runId, onEvent);
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
  }
}
