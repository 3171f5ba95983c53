/**
 * Rows of `a2a_tasks`: the A2A tasks of definitions served as A2A agents (one task = one run).
 * The task itself is opaque JSON here (the A2A server serialises it with the SDK).
 */
import { and, desc, eq, sql } from 'drizzle-orm';
import { a2aPushConfigs, a2aTasks, type Db } from '../../db/index.js';

/** One stored task. */
export interface A2aTaskRow {
  id: string;
  organizationId: string;
  definitionSlug: string;
  runId: string | null;
  contextId: string;
  /** `TASK_STATE_…` name of the saved status. */
  state: string;
  /** The task as A2A v1.0 JSON. */
  task: unknown;
  updatedAt: Date;
}

/** Insert or replace a task (its organization and slug never change). */
export async function saveA2aTask(db: Db, row: Omit<A2aTaskRow, 'updatedAt'>): Promise<void> {
  await db
    .insert(a2aTasks)
    .values({ ...row, updatedAt: sql`now()` })
    .onConflictDoUpdate({
      target: a2aTasks.id,
      set: {
        runId: sql`coalesce(excluded.run_id, ${a2aTasks.runId})`,
        contextId: row.contextId,
        state: row.state,
        task: row.task,
        updatedAt: sql`now()`,
      },
      setWhere: and(eq(a2aTasks.organizationId, row.organizationId), eq(a2aTasks.definitionSlug, row.definitionSlug)),
    });
}

/** A task of the organization and definition, or undefined. */
export async function loadA2aTask(db: Db, organizationId: string, slug: string, id: string): Promise<A2aTaskRow | undefined> {
  const [row] = await db
    .select()
    .from(a2aTasks)
    .where(and(eq(a2aTasks.id, id), eq(a2aTasks.organizationId, organizationId), eq(a2aTasks.definitionSlug, slug)));
  return row;
}

/** Filters of {@link listA2aTasks}. */
export interface A2aTaskQuery {
  contextId?: string;
  /** `TASK_STATE_…` name. */
  state?: string;
  /** Only tasks updated after this instant. */
  updatedAfter?: Date;
  /** 1..100. */
  limit: number;
  /** Rows to skip (the page token is an offset). */
  offset: number;
}

/** The organization's tasks of one definition, most recently updated first. */
export async function listA2aTasks(db: Db, organizationId: string, slug: string, query: A2aTaskQuery): Promise<{ rows: A2aTaskRow[]; total: number }> {
  const base = and(
    eq(a2aTasks.organizationId, organizationId),
    eq(a2aTasks.definitionSlug, slug),
    query.contextId ? eq(a2aTasks.contextId, query.contextId) : undefined,
    query.state ? eq(a2aTasks.state, query.state) : undefined,
    query.updatedAfter ? sql`${a2aTasks.updatedAt} > ${query.updatedAfter.toISOString()}::timestamptz` : undefined,
  );
  const rows = await db.select().from(a2aTasks).where(base).orderBy(desc(a2aTasks.updatedAt), desc(a2aTasks.id)).limit(query.limit).offset(query.offset);
  const [{ total } = { total: 0 }] = await db.select({ total: sql<number>`count(*)::int` }).from(a2aTasks).where(base);
  return { rows, total };
}

/** One stored push-notification config of a task. */
export interface A2aPushConfigRow {
  id: string;
  wireVersion: string;
  /** `TaskPushNotificationConfig` as A2A JSON. */
  config: unknown;
}

/** Insert or replace a task's push config (the task must belong to the organization). */
export async function saveA2aPushConfig(db: Db, organizationId: string, taskId: string, row: A2aPushConfigRow): Promise<void> {
  await db
    .insert(a2aPushConfigs)
    .values({ organizationId, taskId, id: row.id, wireVersion: row.wireVersion, config: row.config })
    .onConflictDoUpdate({ target: [a2aPushConfigs.taskId, a2aPushConfigs.id], set: { wireVersion: row.wireVersion, config: row.config }, setWhere: eq(a2aPushConfigs.organizationId, organizationId) });
}

/** A task's push configs, oldest first. */
export async function loadA2aPushConfigs(db: Db, organizationId: string, taskId: string): Promise<A2aPushConfigRow[]> {
  return db
    .select({ id: a2aPushConfigs.id, wireVersion: a2aPushConfigs.wireVersion, config: a2aPushConfigs.config })
    .from(a2aPushConfigs)
    .where(and(eq(a2aPushConfigs.organizationId, organizationId), eq(a2aPushConfigs.taskId, taskId)))
    .orderBy(a2aPushConfigs.createdAt);
}

/** Delete one push config of a task, or all of them when `id` is omitted. */
export async function deleteA2aPushConfigs(db: Db, organizationId: string, taskId: string, id?: string): Promise<void> {
  await db
    .delete(a2aPushConfigs)
    .where(and(eq(a2aPushConfigs.organizationId, organizationId), eq(a2aPushConfigs.taskId, taskId), id === undefined ? undefined : eq(a2aPushConfigs.id, id)));
}
