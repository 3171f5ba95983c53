/**
 * Wakes SSE streams when run events commit. Every process announces the runs whose events it
 * committed, after the commit, on a Redis channel (`Queues.announceRunEvents`); each API
 * process subscribes once and streams subscribe per run id. Any API instance serves any run,
 * because every instance hears every commit. (Until migration 0017 a trigger NOTIFYed per
 * event; see `announceRunEvents` for why it went.) `LISTEN baton_api_keys` (migration 0010: a
 * key revoked, deleted or changed) tells the key cache of every API instance what to forget.
 */
import { EventEmitter } from 'node:events';
import type { Sql } from 'postgres';
import type { Logger } from '../../lib/index.js';
import type { Queues } from '../../queues/index.js';

/** Emitter channel of every run's events (never a run id). */
const ANY_RUN = '*';
/** Emitter channel of API-key changes (payload: the key's hash, or undefined for "everything"). */
const API_KEYS = 'api-keys';

export class RunEventHub {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly queues: Queues,
    private readonly logger: Logger,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Start listening (resolves once LISTEN is active). */
  async start(): Promise<void> {
    const stopRuns = this.queues.subscribeRunEvents((runIds) => {
      for (const runId of runIds) {
        this.emitter.emit(runId);
        this.emitter.emit(ANY_RUN, runId);
      }
    });
    // onlisten runs at every (re)connection: notifications may have been missed, forget all.
    const keys = await this.sql.listen(
      'baton_api_keys',
      (keyHash) => this.emitter.emit(API_KEYS, keyHash),
      () => this.emitter.emit(API_KEYS, undefined),
    );
    this.unlisten = async () => {
      stopRuns();
      await keys.unlisten();
    };
    this.logger.debug('listening for run events and API-key changes');
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

  /**
   * Call `onChange(keyHash)` whenever an API key is revoked, deleted or changed (its SHA-256 hex
   * digest), and `onChange(undefined)` when notifications may have been missed; returns the
   * unsubscribe function.
   */
  subscribeApiKeyChanges(onChange: (keyHash: string | undefined) => void): () => void {
    this.emitter.on(API_KEYS, onChange);
    return () => this.emitter.off(API_KEYS, onChange);
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
  }
}
