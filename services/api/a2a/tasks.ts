/**
 * A2A tasks are runs (issue 10). A task's state is derived from its run every time it is read —
 * so a run decided or cancelled through any other channel (REST, MCP, CLI, a decideUrl) reads
 * right over A2A — and its conversation (history, context id) is kept in `a2a_tasks` through
 * {@link PostgresTaskStore} (never the SDK's in-memory store).
 *
 * Mapping (A2A v1.0 `TaskState`):
 * - `throttled`, `queued` → `TASK_STATE_SUBMITTED`; `running` → `TASK_STATE_WORKING`;
 * - a pending approval → `TASK_STATE_INPUT_REQUIRED`, its status message = the prompt (text) and
 *   `{approvalId, stepId, prompt, show, decisions, expiresAt}` (data);
 * - `completed` → `TASK_STATE_COMPLETED` with one artifact per top-level key of the run output
 *   (`kpis`, `summary` for kpi-tracking; a non-object output is one artifact `output`);
 * - `failed` → `TASK_STATE_FAILED` (message: the run's error); `cancelled` → `TASK_STATE_CANCELED`.
 */
import type { ServerCallContext, TaskStore, User } from '@a2a-js/sdk/server';
import { Task, TaskState, type ListTasksRequest, type ListTasksResponse, type TaskStatus } from '@a2a-js/sdk';
import { a2aArtifact, a2aMessage, dataPart, textPart, UnauthorizedError } from '../../../lib/index.js';
import type { EngineDeps } from '../../engine/index.js';
import { getRunView, listA2aTasks, loadA2aTask, saveA2aTask } from '../../store/index.js';
import type { Principal } from '../auth.js';

/** The A2A caller: an API key's principal. */
export class PrincipalUser implements User {
  constructor(readonly principal: Principal) {}
  get isAuthenticated(): boolean {
    return true;
  }
  get userName(): string {
    return this.principal.subject;
  }
}

/** The principal of an A2A call. @throws {UnauthorizedError} when the call carries none. */
export function principalOfCall(context: ServerCallContext): Principal {
  const user = context.user;
  if (user instanceof PrincipalUser) return user.principal;
  throw new UnauthorizedError('missing API key: send "Authorization: Bearer <key>"');
}

/** What the mapping reads of `GET /v1/runs/:id`. */
interface RunViewForTask {
  id: string;
  status: string;
  output: unknown;
  error: { code?: string; message?: string } | null;
  finishedAt: string | null;
  startedAt: string | null;
  createdAt: string;
  approvals: Array<{ id: string; stepId: string; status: string; prompt: string; show: unknown; decisions: string[]; expiresAt: string }>;
}

/** The run's status as an A2A task status (see the module doc). */
export function statusOfRun(run: RunViewForTask, ids: { taskId: string; contextId: string }): TaskStatus {
  const timestamp = run.finishedAt ?? run.startedAt ?? run.createdAt;
  const message = (parts: ReturnType<typeof textPart>[]) => a2aMessage('agent', parts, { ...ids, messageId: `${run.id}.${run.status}.${parts.length}` });
  switch (run.status) {
    case 'completed':
      return { state: TaskState.TASK_STATE_COMPLETED, message: undefined, timestamp };
    case 'failed':
      return { state: TaskState.TASK_STATE_FAILED, message: message([textPart(run.error?.message ?? 'the run failed'), dataPart(run.error)]), timestamp };
    case 'cancelled':
      return { state: TaskState.TASK_STATE_CANCELED, message: message([textPart(run.error?.message ?? 'the run was cancelled')]), timestamp };
  }
  const pending = run.approvals.filter((a) => a.status === 'pending').at(-1);
  if (pending) {
    const data = { approvalId: pending.id, stepId: pending.stepId, prompt: pending.prompt, show: pending.show, decisions: pending.decisions, expiresAt: pending.expiresAt };
    return {
      state: TaskState.TASK_STATE_INPUT_REQUIRED,
      message: { ...message([textPart(pending.prompt), dataPart(data)]), messageId: `${run.id}.approval.${pending.id}` },
      timestamp: new Date().toISOString(),
    };
  }
  return { state: run.status === 'queued' || run.status === 'throttled' ? TaskState.TASK_STATE_SUBMITTED : TaskState.TASK_STATE_WORKING, message: undefined, timestamp: new Date().toISOString() };
}

/** The artifacts of a completed run: one per top-level output key. */
export function artifactsOfRun(run: Pick<RunViewForTask, 'id' | 'status' | 'output'>): Task['artifacts'] {
  if (run.status !== 'completed') return [];
  const output = run.output;
  if (output !== null && typeof output === 'object' && !Array.isArray(output)) {
    return Object.entries(output as Record<string, unknown>).map(([key, value]) => a2aArtifact(`${run.id}.${key}`, key, `run output "${key}"`, [value]));
  }
  return [a2aArtifact(`${run.id}.output`, 'output', 'run output', [output])];
}

/** Read a run as the task mapping needs it. */
export async function runForTask(deps: EngineDeps, organizationId: string, runId: string): Promise<RunViewForTask> {
  return (await getRunView(deps, organizationId, runId)) as unknown as RunViewForTask;
}

/** `state` column value of a task. */
function stateName(task: Task): string {
  return TaskState[task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED] ?? 'TASK_STATE_UNSPECIFIED';
}

/** Tasks of one definition served as an A2A agent, in Postgres, their state read from their runs. */
export class PostgresTaskStore implements TaskStore {
  constructor(
    private readonly deps: EngineDeps,
    private readonly slug: string,
  ) {}

  async save(task: Task, context: ServerCallContext): Promise<void> {
    const principal = principalOfCall(context);
    const runId = typeof task.metadata?.['runId'] === 'string' ? (task.metadata['runId']) : null;
    await saveA2aTask(this.deps.database.db, {
      id: task.id,
      organizationId: principal.organizationId,
      definitionSlug: this.slug,
      runId,
      contextId: task.contextId,
      state: stateName(task),
      task: Task.toJSON(task),
    });
  }

  async load(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    const principal = principalOfCall(context);
    const row = await loadA2aTask(this.deps.database.db, principal.organizationId, this.slug, taskId);
    if (!row) return undefined;
    return this.refresh(Task.fromJSON(row.task), row.runId, principal.organizationId);
  }

  async list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const principal = principalOfCall(context);
    const pageSize = params.pageSize ?? 50;
    const offset = params.pageToken ? Number.parseInt(Buffer.from(params.pageToken, 'base64url').toString('utf8'), 10) || 0 : 0;
    const state = params.status !== undefined && params.status !== TaskState.TASK_STATE_UNSPECIFIED ? TaskState[params.status] : undefined;
    const { rows, total } = await listA2aTasks(this.deps.database.db, principal.organizationId, this.slug, {
      ...(params.contextId ? { contextId: params.contextId } : {}),
      ...(state ? { state } : {}),
      ...(params.statusTimestampAfter ? { updatedAfter: new Date(params.statusTimestampAfter) } : {}),
      limit: pageSize,
      offset,
    });
    const tasks = await Promise.all(rows.map((r) => this.refresh(Task.fromJSON(r.task), r.runId, principal.organizationId)));
    if (!params.includeArtifacts) for (const t of tasks) t.artifacts = [];
    const next = offset + rows.length;
    return { tasks, nextPageToken: next < total ? Buffer.from(String(next)).toString('base64url') : '', pageSize, totalSize: total };
  }

  /** The stored task with its status and artifacts taken from its run. */
  private async refresh(task: Task, runId: string | null, organizationId: string): Promise<Task> {
    if (!runId) return task;
    const run = await runForTask(this.deps, organizationId, runId);
    const status = statusOfRun(run, { taskId: task.id, contextId: task.contextId });
    const stored = task.status?.state;
    // Keep the stored status (with its message and timestamp) while it still says the same.
    if (stored !== status.state) task.status = status;
    if (status.state === TaskState.TASK_STATE_INPUT_REQUIRED) task.status = status;
    task.artifacts = artifactsOfRun(run);
    return task;
  }
}
