/**
 * The raw-BullMQ side of the side-by-side bench, driven from the bench process: starts the
 * `scripts/bench-raw-worker.ts` children (2 worker processes and the `serve` endpoint) and
 * measures chain hops, promote → processing, and flow children/s from the jobs' own timestamps
 * (`processedOn`, `finishedOn`, the `completed` sorted set's scores).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { projectRoot } from '../lib/index.js';
import { exited } from './procfile.js';
import { RAW_QUEUES, chainJobId, type ChainJobData } from './bench-raw-worker.js';
import { sleep, waitFor } from './bench-measure.js';
import type { ChainTimes, DecisionTimes } from './bench-baton.js';

/** A raw child process and what it printed when ready. */
interface RawChild {
  child: ChildProcess;
  ready: string;
}

function spawnRaw(mode: 'worker' | 'serve', redisUrl: string, prefix: string, concurrency: number): Promise<RawChild> {
  const child = spawn(
    process.execPath,
    [join(projectRoot(), 'dist/scripts/bench-raw-worker.js'), mode, '--redis-url', redisUrl, '--prefix', prefix, '--concurrency', String(concurrency)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => reject(new Error(`raw ${mode} did not start within 30 s`)), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve({ child, ready: line });
    });
    child.once('exit', (code) => reject(new Error(`raw ${mode} exited (code ${code}) before it was ready`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([exited(child).then(() => true), sleep(10_000).then(() => false)]);
  if (!done) child.kill('SIGKILL');
}

/** The raw side's processes and queues. */
export class RawBullmq {
  private constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    readonly workers: ChildProcess[],
    readonly server: ChildProcess,
    /** Base URL of the raw `POST /v1/runs` endpoint. */
    readonly baseUrl: string,
  ) {}

  /**
   * Start `workerProcesses` worker children at `concurrency` and the endpoint.
   * @param redis - the bench's own connection (reads job timestamps, promotes, adds chain heads).
   */
  static async start(redis: Redis, redisUrl: string, prefix: string, workerProcesses: number, concurrency: number): Promise<RawBullmq> {
    const workers = await Promise.all(Array.from({ length: workerProcesses }, () => spawnRaw('worker', redisUrl, prefix, concurrency)));
    const server = await spawnRaw('serve', redisUrl, prefix, concurrency);
    const port = server.ready.split(' ')[1];
    return new RawBullmq(redis, prefix, workers.map((w) => w.child), server.child, `http://127.0.0.1:${port}`);
  }

  /** Pids of the processes doing the raw side's work (workers and endpoint). */
  pids(): number[] {
    return [...this.workers, this.server].map((c) => c.pid ?? 0).filter((p) => p > 0);
  }

  /** Stop the worker children (the endpoint keeps running). */
  async stopWorkers(): Promise<void> {
    await Promise.all(this.workers.map(stopChild));
  }

  /** Stop every child. */
  async stop(): Promise<void> {
    await Promise.all([...this.workers, this.server].map(stopChild));
  }

  private key(queue: string, ...parts: string[]): string {
    return [this.prefix, queue, ...parts].join(':');
  }

  private async timestamps(queue: string, jobId: string): Promise<{ processedOn: number; finishedOn: number }> {
    const [processedOn, finishedOn] = await this.redis.hmget(this.key(queue, jobId), 'processedOn', 'finishedOn');
    return { processedOn: Number(processedOn ?? NaN), finishedOn: Number(finishedOn ?? NaN) };
  }

  /**
   * Chain hops, one chain at a time (after one untimed warm-up chain): job `i + 1`'s
   * `processedOn` − job `i`'s `finishedOn`, and cycles: `finishedOn` − the previous `finishedOn`.
   */
  async hops(chains: number, steps: number): Promise<ChainTimes> {
    const queue = new Queue<ChainJobData>(RAW_QUEUES.chain, { connection: this.redis, prefix: this.prefix });
    const result: ChainTimes = { hops: [], cycles: [] };
    try {
      for (let c = 0; c < chains + 1; c += 1) {
        const chain = `chain${c}-${Date.now()}`;
        await queue.add('step', { chain, i: 0, n: steps }, { jobId: chainJobId(chain, 0) });
        await waitFor(`raw chain ${chain}`, async () => Number.isFinite((await this.timestamps(RAW_QUEUES.chain, chainJobId(chain, steps - 1))).finishedOn), 60_000, 10);
        if (c === 0) continue;
        let previous = await this.timestamps(RAW_QUEUES.chain, chainJobId(chain, 0));
        for (let i = 1; i < steps; i += 1) {
          const current = await this.timestamps(RAW_QUEUES.chain, chainJobId(chain, i));
          result.hops.push(current.processedOn - previous.finishedOn);
          result.cycles.push(current.finishedOn - previous.finishedOn);
          previous = current;
        }
      }
    } finally {
      await queue.close();
    }
    return result;
  }

  /**
   * Promote → processing started, one job at a time (after one untimed warm-up): add a job
   * delayed by an hour, wait `settleMs`, take the time, `promote()`, and read its `processedOn`
   * (and `finishedOn`).
   */
  async promotions(count: number, settleMs: number): Promise<DecisionTimes> {
    const queue = new Queue(RAW_QUEUES.approvals, { connection: this.redis, prefix: this.prefix });
    const result: DecisionTimes = { started: [], done: [] };
    try {
      for (let i = 0; i < count + 1; i += 1) {
        const job = await queue.add('gate', { i }, { delay: 3_600_000 });
        await sleep(settleMs);
        const t0 = Date.now();
        await job.promote();
        const id = job.id ?? '';
        await waitFor(`raw promoted job ${id}`, async () => Number.isFinite((await this.timestamps(RAW_QUEUES.approvals, id)).finishedOn), 60_000, 5);
        const { processedOn, finishedOn } = await this.timestamps(RAW_QUEUES.approvals, id);
        if (i > 0) {
          result.started.push(processedOn - t0);
          result.done.push(finishedOn - t0);
        }
        await sleep(settleMs);
      }
    } finally {
      await queue.close();
    }
    return result;
  }

  /**
   * `flows` flows of `children` no-op children in flight at once, added through the endpoint
   * `concurrency` at a time (as Baton's runs are POSTed); children/s over first add → last
   * child's `finishedOn` (the `completed` set's score).
   */
  async throughput(flows: number, children: number, concurrency: number, timeoutMs: number): Promise<{ children: number; wallMs: number }> {
    const completed = this.key(RAW_QUEUES.children, 'completed');
    const parentsCompleted = this.key(RAW_QUEUES.parents, 'completed');
    const childrenBefore = await this.redis.zcard(completed);
    const parentsBefore = await this.redis.zcard(parentsCompleted);
    const startedAt = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < flows) {
          next += 1;
          const res = await fetch(`${this.baseUrl}/v1/runs?children=${children}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ definition: 'raw', input: {} }),
          });
          if (res.status !== 202) throw new Error(`raw POST /v1/runs answered ${res.status}`);
          await res.arrayBuffer();
        }
      }),
    );
    await waitFor(`${flows} raw flows completed`, async () => (await this.redis.zcard(parentsCompleted)) - parentsBefore >= flows, timeoutMs, 20);
    const done = (await this.redis.zcard(completed)) - childrenBefore;
    const [, last] = await this.redis.zrange(completed, '-1', '-1', 'WITHSCORES');
    return { children: done, wallMs: Number(last) - startedAt };
  }
}
