/**
 * The Baton HTTP API as the CLI (and `baton mcp`) uses it: JSON requests with the API key as
 * Bearer, errors as {@link ApiError} (the API's `{error: {code, message, field?}}`), and a run's
 * SSE stream (`GET /v1/runs/:id/stream`, resumed with `Last-Event-ID` when the connection drops).
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { BatonBackend, RunSnapshot } from '../services/api/index.js';

/** An error answer of the API. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** One run event from the stream. */
export interface StreamEvent {
  seq: number;
  type: string;
  stepId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

/** Reconnect delay after a dropped stream, in milliseconds. */
const RECONNECT_MS = 1000;

export class BatonClient implements BatonBackend {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  /**
   * One JSON request.
   * @throws {ApiError} for a non-2xx answer; `Error` when the API cannot be reached.
   */
  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new Error(`cannot reach the Baton API at ${this.baseUrl} (${(err as Error).message}); start it with \`baton dev\` or set BATON_URL`, { cause: err });
    }
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as unknown) : null;
    if (!response.ok) {
      const error = (parsed as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
      throw new ApiError(response.status, error?.code ?? `HTTP_${response.status}`, error?.message ?? text, error?.field);
    }
    return parsed as T;
  }

  listDefinitions() {
    return this.request('GET', '/v1/definitions');
  }
  async describeDefinition(slug: string, version?: number) {
    const s = encodeURIComponent(slug);
    const v = version ?? (await this.request<{ versions: Array<{ version: number }> }>('GET', `/v1/definitions/${s}`)).versions[0]?.version;
    return this.request('GET', `/v1/definitions/${s}/versions/${v}`);
  }
  startRun(body: { definition: string; version?: number; input: unknown; idempotencyKey?: string }) {
    return this.request<{ id: string; status: string }>('POST', '/v1/runs', body);
  }
  dryRun(body: { definition: string; version?: number; input: unknown }) {
    return this.request('POST', '/v1/runs?dryRun=true', body);
  }
  getRun(id: string) {
    return this.request<RunSnapshot>('GET', `/v1/runs/${encodeURIComponent(id)}`);
  }
  listRuns(query: { status?: string; definition?: string; limit?: number }) {
    const params = new URLSearchParams();
    if (query.status) params.set('status', query.status);
    if (query.definition) params.set('definition', query.definition);
    if (query.limit) params.set('limit', String(query.limit));
    return this.request<{ items: Array<Record<string, unknown>>; nextCursor: string | null }>('GET', `/v1/runs${params.size > 0 ? `?${params.toString()}` : ''}`);
  }
  listApprovals(status?: string) {
    return this.request('GET', `/v1/approvals${status ? `?status=${encodeURIComponent(status)}` : ''}`);
  }
  decideApproval(id: string, body: { decision: string; input?: unknown; comment?: string }) {
    return this.request('POST', `/v1/approvals/${encodeURIComponent(id)}/decision`, body);
  }
  cancelRun(id: string, reason?: string) {
    return this.request('POST', `/v1/runs/${encodeURIComponent(id)}/cancel`, reason === undefined ? {} : { reason });
  }
  getManifest(id: string) {
    return this.request('GET', `/v1/runs/${encodeURIComponent(id)}/manifest`);
  }

  /**
   * Follow a run's events until its terminal event (`run.completed|failed|cancelled`), calling
   * `onEvent` in order; reconnects with `Last-Event-ID` when the stream drops.
   * @returns the terminal event.
   */
  async follow(runId: string, onEvent: (e: StreamEvent) => Promise<void> | void): Promise<StreamEvent> {
    let last = 0;
    for (;;) {
      const response = await fetch(`${this.baseUrl}/v1/runs/${encodeURIComponent(runId)}/stream`, {
        headers: { authorization: `Bearer ${this.apiKey}`, accept: 'text/event-stream', ...(last > 0 ? { 'last-event-id': String(last) } : {}) },
      }).catch(() => undefined);
      if (response && !response.ok) {
        const text = await response.text();
        const error = (JSON.parse(text || '{}') as { error?: { code?: string; message?: string } }).error;
        throw new ApiError(response.status, error?.code ?? `HTTP_${response.status}`, error?.message ?? text);
      }
      if (response?.body) {
        const queue: EventSourceMessage[] = [];
        const parser = createParser({ onEvent: (m) => queue.push(m) });
        const decoder = new TextDecoder();
        try {
          for await (const chunk of response.body) {
            parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
            while (queue.length > 0) {
              const message = queue.shift() as EventSourceMessage;
              const event = JSON.parse(message.data) as StreamEvent;
              last = event.seq;
              await onEvent(event);
              if (event.type === 'run.completed' || event.type === 'run.failed' || event.type === 'run.cancelled') return event;
            }
          }
        } catch {
          // Dropped mid-stream: reconnect below.
        }
      }
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
  }
}
