/**
 * Measuring tools of the side-by-side bench (`scripts/bench-side-by-side.ts`), all from outside the
 * processes under measure: percentiles, CPU time from `/proc/<pid>/stat`, Redis memory of a key
 * prefix (`MEMORY USAGE`), the Postgres backends of a database, and the statement log of a
 * database (`log_statement = 'all'` lines in the server log).
 */
import { open, readFile, stat } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import type { Redis } from 'ioredis';
import type { Sql } from 'postgres';

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux x86-64 and arm64). */
const CLOCK_TICKS_PER_S = 100;

/** The `p`-th percentile (nearest rank) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** The load averages over 1, 5 and 15 minutes: `1.23 / 1.10 / 0.98`. */
export function loadAverages(): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ');
}

/** `load average 1.23 / 1.10 / 0.98 (1/5/15 min), 2 cores`. */
export function loadLine(): string {
  return `load average ${loadAverages()} (1/5/15 min), ${availableParallelism()} cores`;
}

/** Sleep `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll `check` every `intervalMs` until it returns true.
 * @throws Error naming `what` when `timeoutMs` passes first.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(intervalMs);
  }
}

/**
 * CPU time (user + system) of a process so far, in milliseconds, from `/proc/<pid>/stat`
 * (fields 14 and 15, in clock ticks; proc(5)). 0 when the process is gone.
 */
export async function processCpuMs(pid: number): Promise<number> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after it.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and fields[12].
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S) * 1000;
}

/** CPU ms per pid, for a set of processes. */
export async function cpuSnapshot(pids: readonly number[]): Promise<Map<number, number>> {
  return new Map(await Promise.all(pids.map(async (pid) => [pid, await processCpuMs(pid)] as const)));
}

/**
 * CPU ms spent between two snapshots by the processes of `after` (a process absent from `before`
 * started in between and counts from zero; one gone by `after` is not counted).
 */
export function cpuDeltaMs(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += Math.max(0, ms - (before.get(pid) ?? 0));
  return total;
}

/** Postgres backend pids connected to `database`, other than the caller's own. */
export async function backendPids(sql: Sql, database: string): Promise<number[]> {
  const rows = await sql<Array<{ pid: number }>>`select pid from pg_stat_activity where datname = ${database} and pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

/** Every key of a BullMQ prefix (`<prefix>:*`), by SCAN. */
export async function prefixKeys(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** Keys BullMQ keeps once per queue (`<prefix>:<queue>:<name>`); any other name is a job's. */
const QUEUE_KEYS = new Set(['events', 'completed', 'failed', 'wait', 'paused', 'active', 'delayed', 'prioritized', 'meta', 'id', 'marker', 'stalled', 'stalled-check', 'waiting-children', 'repeat', 'limiter', 'pc', 'de']);

/**
 * The group a BullMQ key counts in: `<queue>:<name>` for a queue's own keys (`runs:events`),
 * `<queue>:<job>` for job hashes and `<queue>:<job>:<suffix>` for a job's other keys
 * (`runs:<job>:dependencies`).
 */
function keyGroup(prefix: string, key: string): string {
  const [queue = '', name = '', ...rest] = key.slice(prefix.length + 1).split(':');
  if (QUEUE_KEYS.has(name) && rest.length === 0) return `${queue}:${name}`;
  return rest.length === 0 ? `${queue}:<job>` : `${queue}:<job>:${rest.join(':')}`;
}

/** What Redis holds for a key prefix. */
export interface PrefixMemory {
  /** Sum of `MEMORY USAGE <key> SAMPLES 0` (every element counted) over the prefix's keys. */
  bytes: number;
  keys: number;
  /** Bytes per key group (see `keyGroup`). */
  groups: Map<string, number>;
}

/** Bytes Redis holds for the keys of `prefix`, in all and per key group. */
export async function prefixMemory(redis: Redis, prefix: string): Promise<PrefixMemory> {
  const keys = await prefixKeys(redis, prefix);
  const groups = new Map<string, number>();
  let bytes = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const pipeline = redis.pipeline();
    for (const key of batch) pipeline.memory('USAGE', key, 'SAMPLES', 0);
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([err, value], j) => {
      if (err || typeof value !== 'number') return;
      bytes += value;
      const group = keyGroup(prefix, batch[j] ?? '');
      groups.set(group, (groups.get(group) ?? 0) + value);
    });
  }
  return { bytes, keys: keys.length, groups };
}

/** The `top` key groups that grew most from `before` to `after`, per `unit` (e.g. per step): `runs:events 310 B, …`. */
export function memoryGrowth(before: PrefixMemory, after: PrefixMemory, unit: number, top = 5): string {
  const growth = [...after.groups].map(([group, bytes]) => [group, (bytes - (before.groups.get(group) ?? 0)) / unit] as const);
  return growth
    .filter(([, b]) => Math.abs(b) >= 1)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([group, b]) => `${group} ${Math.round(b)} B`)
    .join(', ');
}

/** Delete every key of `prefix`; returns how many. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  const keys = await prefixKeys(redis, prefix);
  for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
  return keys.length;
}

/**
 * The server log file Postgres writes to: `pg_current_logfile()` when the logging collector runs,
 * else the Debian default `/var/log/postgresql/postgresql-<major>-main.log`; undefined when
 * neither can be read.
 */
export async function serverLogFile(sql: Sql): Promise<string | undefined> {
  const [row] = await sql<Array<{ file: string | null; dir: string; version: string }>>`
    select pg_current_logfile() as file, current_setting('data_directory') as dir, current_setting('server_version_num') as version`;
  const candidates = [
    ...(row?.file ? [row.file.startsWith('/') ? row.file : `${row.dir}/${row.file}`] : []),
    `/var/log/postgresql/postgresql-${Math.floor(Number(row?.version ?? 0) / 10000)}-main.log`,
  ];
  for (const file of candidates) {
    try {
      const handle = await open(file, 'r');
      await handle.close();
      return file;
    } catch {
      // not readable: try the next one
    }
  }
  return undefined;
}

/** Current size of a file in bytes (where appended lines start). */
export async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size;
}

/** The bytes of `file` from `start` to `end` (default: its current end), as UTF-8 text. */
export async function readFrom(file: string, start: number, end?: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    end ??= (await handle.stat()).size;
    const buffer = Buffer.alloc(Math.max(0, end - start));
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** What a database's sessions ran, counted from its statement log. */
export interface StatementCounts {
  /** Statements executed (`statement:` and `execute …:` lines), BEGIN and COMMIT included. */
  statements: number;
  /** Transactions: BEGIN … COMMIT/ROLLBACK blocks, plus statements run outside a block. */
  transactions: number;
  /**
   * Committed transactions that wrote (INSERT/UPDATE/DELETE/MERGE, or row locks `FOR UPDATE/SHARE`)
   * without `synchronous_commit = off`: each waits for a WAL flush (an fsync, unless group commit
   * shares one).
   */
  durableCommits: number;
}

/** A log record's head: `%m [%p] %q%u@%d ` (the Debian default `log_line_prefix`) then `LOG:  `. */
const RECORD_HEAD = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\] (?:\S*@(\S*) )?([A-Z]+):\s+(.*)$/;
const STATEMENT = /^(?:statement|execute [^:]*):\s*([\s\S]*)$/;
const WRITES = /\b(insert|update|delete|merge)\b|\bfor\s+(no\s+key\s+)?update\b|\bfor\s+(key\s+)?share\b/i;
const ASYNC_COMMIT = /synchronous_commit\s*(=|to)\s*'?(off|local)\b/i;
/**
 * Baton's server-side transitions (`db/migrations/0006_hot-path.sql`, `0015_start-run-claim-fixed.sql`):
 * the log shows only the call, so what they write — and whether they commit with
 * `synchronous_commit = off` — is known here. `baton_claim_step` and `baton_claim_step_fixed`
 * commit asynchronously; `baton_complete_step` and `baton_start_run` durably.
 */
const DURABLE_FUNCTIONS = /\bbaton_(complete_step|start_run)\s*\(/i;
const ASYNC_FUNCTIONS = /\bbaton_claim_step(_fixed)?\s*\(/i;

/** One record of the server log: a head line and its continuation lines (a multi-line statement). */
interface LogRecord {
  pid: string;
  database: string | undefined;
  level: string;
  text: string;
}

/** The records of server log text, continuation lines joined to the record they continue. */
function logRecords(logText: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of logText.split('\n')) {
    const head = RECORD_HEAD.exec(line);
    if (head) records.push({ pid: head[1] ?? '', database: head[2], level: head[3] ?? '', text: head[4] ?? '' });
    else if (records.length > 0) (records.at(-1) as LogRecord).text += `\n${line}`;
  }
  return records;
}

/**
 * Count what sessions of `database` ran, from server log text written with `log_statement = 'all'`
 * and a `log_line_prefix` of `%m [%p] %q%u@%d ` (Debian's default). Transactions are followed per
 * backend pid; records of `excludePids` (e.g. the bench's own connection) are left out.
 */
export function countStatements(logText: string, database: string, excludePids: readonly number[] = []): StatementCounts {
  const counts: StatementCounts = { statements: 0, transactions: 0, durableCommits: 0 };
  const blocks = new Map<string, { writes: boolean; async: boolean }>();
  const excluded = new Set(excludePids.map(String));
  for (const record of logRecords(logText)) {
    if (record.database !== database || record.level !== 'LOG' || excluded.has(record.pid)) continue;
    const statement = STATEMENT.exec(record.text);
    if (!statement) continue;
    const text = (statement[1] ?? '').trim();
    counts.statements += 1;
    const tx = blocks.get(record.pid);
    if (/^(begin|start\s+transaction)\b/i.test(text)) {
      blocks.set(record.pid, { writes: false, async: false });
    } else if (/^(commit|end|rollback|abort)\b/i.test(text)) {
      counts.transactions += 1;
      if (tx?.writes && !tx.async && /^(commit|end)\b/i.test(text)) counts.durableCommits += 1;
      blocks.delete(record.pid);
    } else if (tx) {
      tx.writes ||= WRITES.test(text) || DURABLE_FUNCTIONS.test(text) || ASYNC_FUNCTIONS.test(text);
      tx.async ||= ASYNC_COMMIT.test(text) || ASYNC_FUNCTIONS.test(text);
    } else {
      counts.transactions += 1;
      if ((WRITES.test(text) || DURABLE_FUNCTIONS.test(text)) && !ASYNC_FUNCTIONS.test(text)) counts.durableCommits += 1;
    }
  }
  return counts;
}
