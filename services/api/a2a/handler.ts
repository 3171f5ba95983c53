/**
 * Every definition as an A2A v1.0 agent (issue 10), on the official SDK's
 * `DefaultRequestHandler` with {@link PostgresTaskStore}:
 *
 * - A message without `taskId` starts a run (its first data part is the run input; else its text
 *   parsed as JSON) **before** the SDK sees it; the task id is the run id and the task is saved
 *   `SUBMITTED`, so the SDK then treats the message as the task's first turn.
 * - A message with `taskId` (and the task's `contextId`) answers the run's pending approval: a
 *   data part `{decision, input?, comment?}` (or the text `continue` / `retry` / `abort`) is
 *   decided under the approvals API's rules (approver roles, quorum, self-approval) with the
 *   caller's API key; 400/403/409/410 become A2A errors (`INVALID_PARAMS`, or
 *   `UNSUPPORTED_OPERATION` with metadata `{code, httpStatus}`).
 * - The executor follows the run: step events become `WORKING` status updates, a pending
 *   approval `INPUT_REQUIRED`, the end artifacts + `COMPLETED` / `FAILED` / `CANCELED`. Blocking
 *   `SendMessage` therefore returns at a terminal or interrupted state.
 * - `CancelTask` cancels the run (compensations first, as `POST /v1/runs/:id/cancel`).
 */
import { randomUUID } from 'node:crypto';
import {
  AgentEvent,
  DefaultRequestHandler,
  type AgentExecutor,
  type PushNotificationSender,
  type PushNotificationStore,
  type ExecutionEventBus,
  type RequestContext,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import {
  TaskState,
  type AgentCard,
  type CancelTaskRequest,
  type Message,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
} from '@a2a-js/sdk';
import { A2AError, RequestMalformedError, TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError } from '@a2a-js/sdk/errors';
import { AppError, ForbiddenError, a2aMessage, partsData, partsText, textPart } from '../../../lib/index.js';
import { cancelRun, decideApproval, startRun, type EngineDeps } from '../../engine/index.js';
import { listEvents, loadA2aTask } from '../../store/index.js';
import type { RunEventHub } from '../event-hub.js';
import { PostgresTaskStore, artifactsOfRun, principalOfCall, runForTask, statusOfRun } from './tasks.js';

/** Safety re-read while following a run, in milliseconds (the event hub wakes us sooner). */
const FOLLOW_POLL_MS = 2000;
const TERMINAL = new Set([TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED]);

/** Baton's error taxonomy as A2A errors (the JSON-RPC / REST transports map those). */
function toA2aError(err: unknown): unknown {
  if (!(err instanceof AppError)) return err;
  const metadata = { code: err.code, httpStatus: String(err.httpStatus), ...(err.field ? { field: err.field } : {}) };
  if (err.code === 'VALIDATION_FAILED') return new RequestMalformedError({ message: err.message, metadata });
  if (err.code === 'NOT_FOUND') return new TaskNotFoundError({ message: err.message, metadata });
  return new UnsupportedOperationError({ message: err.message, metadata });
}

async function mapErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toA2aError(err);
  }
}

/** The run input carried by a first message: its first data part, else its text as JSON. */
function runInputOf(message: Message): unknown {
  const data = partsData(message.parts);
  if (data.length > 0) return data[0];
  const text = partsText(message.parts).trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RequestMalformedError('the message must carry the run input as a data part (or JSON text)');
  }
}

/** A follow-up's decision: a data part `{decision, input?, comment?}`, or the bare word as text. */
function replyOf(message: Message): { decision: string; input?: unknown; comment?: string } {
  const data = partsData(message.parts).find((d) => d !== null && typeof d === 'object' && 'decision' in d) as Record<string, unknown> | undefined;
  if (data) {
    if (typeof data['decision'] !== 'string') throw new RequestMalformedError('decision must be a string');
    if (data['comment'] !== undefined && typeof data['comment'] !== 'string') throw new RequestMalformedError('comment must be a string');
    return {
      decision: data['decision'],
      ...(data['input'] === undefined ? {} : { input: data['input'] }),
      ...(typeof data['comment'] === 'string' ? { comment: data['comment'] } : {}),
    };
  }
  const word = partsText(message.parts).trim().toLowerCase();
  if (word === '') throw new RequestMalformedError('a follow-up message must carry {decision, input?, comment?} as a data part');
  return { decision: word };
}

/** Runs of one definition behind the SDK's request handler. */
export class RunRequestHandler extends DefaultRequestHandler {
  constructor(
    card: AgentCard,
    private readonly deps: EngineDeps,
    private readonly slug: string,
    private readonly store: PostgresTaskStore,
    hub: RunEventHub,
    push: { store: PushNotificationStore; sender: PushNotificationSender },
  ) {
    super(card, store, new RunExecutor(deps, hub), undefined, push.store, push.sender);
  }

  override async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<Message | Task> {
    return super.sendMessage(await this.prepare(params, context), context);
  }

  override async *sendMessageStream(params: SendMessageRequest, context: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    yield* super.sendMessageStream(await this.prepare(params, context), context);
  }

  override async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    const principal = principalOfCall(context);
    const task = await this.store.load(params.id, context);
    if (!task) throw new TaskNotFoundError(`Task not found: ${params.id}`);
    if (task.status?.state === TaskState.TASK_STATE_CANCELED) return task;
    if (TERMINAL.has(task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)) throw new TaskNotCancelableError(`Task not cancelable: ${params.id}`);
    if (!principal.scopes.includes('runs:write') && !principal.scopes.includes('admin')) throw toA2aError(new ForbiddenError('this API key lacks the "runs:write" scope'));
    await mapErrors(() => cancelRun(this.deps, principal, String(task.metadata?.['runId'] ?? params.id), 'cancelled over A2A'));
    for (;;) {
      const current = await this.store.load(params.id, context);
      if (current && TERMINAL.has(current.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)) return current;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Start the run of a new task, or decide the approval a follow-up answers (see the module doc). */
  private async prepare(params: SendMessageRequest, context: ServerCallContext): Promise<SendMessageRequest> {
    const principal = principalOfCall(context);
    const message = params.message;
    if (!message) throw new RequestMalformedError('request.message is required.');
    if (message.taskId) {
      const row = await loadA2aTask(this.deps.database.db, principal.organizationId, this.slug, message.taskId);
      if (!row?.runId) throw new TaskNotFoundError(`Task not found: ${message.taskId}`);
      if (message.contextId && message.contextId !== row.contextId) {
        throw new RequestMalformedError(`contextId mismatch: task ${row.id} has contextId ${row.contextId}`);
      }
      const run = await runForTask(this.deps, principal.organizationId, row.runId);
      const pending = run.approvals.filter((a) => a.status === 'pending').at(-1);
      if (pending) {
        if (!principal.scopes.includes('approvals:decide') && !principal.scopes.includes('admin')) {
          throw toA2aError(new ForbiddenError('this API key lacks the "approvals:decide" scope'));
        }
        const reply = replyOf(message);
        await mapErrors(() =>
          decideApproval(this.deps, {
            approvalId: pending.id,
            decision: reply.decision,
            ...(reply.input === undefined ? {} : { input: reply.input }),
            ...(reply.comment === undefined ? {} : { comment: reply.comment }),
            auth: { via: 'api-key', organizationId: principal.organizationId, subject: principal.subject, roles: principal.roles },
          }),
        );
      }
      return { ...params, message: { ...message, contextId: row.contextId } };
    }
    if (!principal.scopes.includes('runs:write') && !principal.scopes.includes('admin')) {
      throw toA2aError(new ForbiddenError('this API key lacks the "runs:write" scope'));
    }
    const input = runInputOf(message);
    const run = await mapErrors(() =>
      startRun(this.deps, {
        organizationId: principal.organizationId,
        createdBy: principal.subject,
        definition: this.slug,
        input,
        idempotencyKey: `a2a:${message.messageId || randomUUID()}`,
      }),
    );
    const contextId = message.contextId || randomUUID();
    const task: Task = {
      id: run.id,
      contextId,
      status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() },
      artifacts: [],
      history: [],
      metadata: { runId: run.id, definition: this.slug },
    };
    if (!(await this.store.load(run.id, context))) await this.store.save(task, context);
    return { ...params, message: { ...message, taskId: run.id, contextId } };
  }
}

/** Follows a run and publishes it as A2A task events. */
class RunExecutor implements AgentExecutor {
  constructor(
    private readonly deps: EngineDeps,
    private readonly hub: RunEventHub,
  ) {}

  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const principal = principalOfCall(context.context);
    const task = context.task;
    if (!task) throw new A2AError('a task is prepared before execution');
    const runId = String(task.metadata?.['runId'] ?? context.taskId);
    const ids = { taskId: task.id, contextId: task.contextId };
    const existing = await listEvents(this.deps, runId, 0, 100_000);
    let after = existing.at(-1)?.seq ?? 0;
    bus.publish(AgentEvent.task({ ...task, status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: new Date().toISOString() } }));
    for (;;) {
      // Events first, then the run: the status read is never older than the events.
      const events = await listEvents(this.deps, runId, after, 500);
      const run = await runForTask(this.deps, principal.organizationId, runId);
      const status = statusOfRun(run, ids);
      for (const e of events) {
        after = e.seq;
        // Once the run ended, its last step events would only follow the final status.
        if (!e.type.startsWith('step.') || TERMINAL.has(status.state)) continue;
        const text = `${e.type} ${e.stepId ?? ''}`.trim();
        bus.publish(
          AgentEvent.statusUpdate({
            ...ids,
            status: { state: TaskState.TASK_STATE_WORKING, message: a2aMessage('agent', [textPart(text)], { ...ids, messageId: `${runId}.event.${e.seq}` }), timestamp: e.createdAt },
            metadata: { event: e.type, seq: e.seq },
          }),
        );
      }
      if (TERMINAL.has(status.state)) {
        for (const artifact of artifactsOfRun(run)) bus.publish(AgentEvent.artifactUpdate({ ...ids, artifact, append: false, lastChunk: true, metadata: undefined }));
        bus.publish(AgentEvent.statusUpdate({ ...ids, status, metadata: undefined }));
        return;
      }
      if (status.state === TaskState.TASK_STATE_INPUT_REQUIRED) {
        bus.publish(AgentEvent.statusUpdate({ ...ids, status, metadata: undefined }));
        return;
      }
      await this.wake(runId);
    }
  }

  /** Cancellation is the handler's (it cancels the run); the follow loop then sees it end. */
  async cancelTask(): Promise<void> {}

  private wake(runId: string): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, FOLLOW_POLL_MS);
      const unsubscribe = this.hub.subscribe(runId, done);
    });
  }
}
