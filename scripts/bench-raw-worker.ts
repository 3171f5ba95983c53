/**
 * The raw-BullMQ side of the side-by-side bench, as a child process (no Baton code):
 *
 * - `worker`: BullMQ `Worker`s with no-op processors on the raw queues — `children` (flow
 *   children) and `chain` at `--concurrency` (Baton's `WORKER_CONCURRENCY`), `parents` and
 *   `approvals` at 50 (Baton's `runs` and `checkpoints` workers). A finished `chain` job adds the
 *   next one of its chain (`worker.on('completed')` → `queue.add`: step done → successor added).
 * - `serve`: the cost floor of `POST /v1/runs`: an express server whose `POST /v1/runs` only adds
 *   a BullMQ flow (a `parents` job with `?children=N` no-op `children` jobs, default 1) and
 *   answers 202 with the flow's id.
 *
 * Prints `ready <port>` (serve) or `ready` (worker) on stdout once it takes work; SIGTERM closes
 * everything and exits 0. Default retention (completed jobs are kept), like BullMQ out of the box.
 *
 *   node dist/scripts/bench-raw-worker.js worker --redis-url redis://… --prefix baton-bench-raw --concurrency 16
 *   node dist/scripts/bench-raw-worker.js serve --redis-url redis://… --prefix baton-bench-raw
 */
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import express from 'express';
import { FlowProducer, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { installSignalHandlers, runEntry, silentLogger } from '../lib/index.js';

/** Queue names of the raw side (under its own prefix). */
export const RAW_QUEUES = { children: 'children', parents: 'parents', chain: 'chain', approvals: 'approvals' } as const;

/** Payload of a `chain` job: job `i` of `n` in chain `chain` (job id `<chain>-<i>`). */
export interface ChainJobData {
  chain: string;
  i: number;
  n: number;
}

/** Job id of the `i`-th job of a chain. */
export function chainJobId(chain: string, i: number): string {
  return `${chain}-${i}`;
}

const noop = (): Promise<void> => Promise.resolve();

async function startWorkers(redisUrl: string, prefix: string, concurrency: number): Promise<() => Promise<void>> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, connectionName: 'bench-raw-worker' });
  const chainQueue = new Queue<ChainJobData>(RAW_QUEUES.chain, { connection, prefix });
  const options = { connection, prefix };
  const workers = [
    new Worker(RAW_QUEUES.children, noop, { ...options, concurrency }),
    new Worker(RAW_QUEUES.parents, noop, { ...options, concurrency: 50 }),
    new Worker(RAW_QUEUES.approvals, noop, { ...options, concurrency: 50 }),
    new Worker<ChainJobData>(RAW_QUEUES.chain, noop, { ...options, concurrency }),
  ];
  const chainWorker = workers[3] as Worker<ChainJobData>;
  chainWorker.on('completed', (job: Job<ChainJobData>) => {
    const { chain, i, n } = job.data;
    if (i + 1 < n) {
      chainQueue.add('step', { chain, i: i + 1, n }, { jobId: chainJobId(chain, i + 1) }).catch((err: unknown) => {
        process.stderr.write(`bench-raw-worker: could not add the next chain job: ${String(err)}\n`);
      });
    }
  });
  for (const w of workers) w.on('error', (err) => process.stderr.write(`bench-raw-worker: ${err.message}\n`));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  return async () => {
    await Promise.allSettled(workers.map((w) => w.close()));
    await chainQueue.close();
    connection.disconnect();
  };
}

async function serve(redisUrl: string, prefix: string): Promise<{ port: number; close: () => Promise<void> }> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, connectionName: 'bench-raw-serve' });
  const flows = new FlowProducer({ connection, prefix });
  const app = express();
  app.use(express.json());
  app.post('/v1/runs', (req, res, next) => {
    const children = Math.max(1, Math.min(1000, Number(req.query.children ?? 1) || 1));
    flows
      .add({
        name: 'run',
        queueName: RAW_QUEUES.parents,
        data: { input: (req.body as { input?: unknown } | undefined)?.input ?? {} },
        children: Array.from({ length: children }, (_, i) => ({ name: 'step', queueName: RAW_QUEUES.children, data: { i } })),
      })
      .then((flow) => res.status(202).json({ id: flow.job.id }), next);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await flows.close();
      connection.disconnect();
    },
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      prefix: { type: 'string' },
      concurrency: { type: 'string', default: '16' },
    },
  });
  const mode = positionals[0];
  const prefix = values.prefix;
  if (!prefix) throw new Error('--prefix is required');
  let close: () => Promise<void>;
  if (mode === 'worker') {
    close = await startWorkers(values['redis-url'], prefix, Number(values.concurrency));
    process.stdout.write('ready\n');
  } else if (mode === 'serve') {
    const server = await serve(values['redis-url'], prefix);
    close = server.close;
    process.stdout.write(`ready ${server.port}\n`);
  } else {
    throw new Error(`expected a mode, worker or serve (got ${mode ?? 'none'})`);
  }
  installSignalHandlers(process, { run: async () => (await close().then(() => true, () => false)) }, { logger: silentLogger(), timeoutMs: 5000 });
}

const isEntry = /bench-raw-worker\.(js|ts)$/.test(process.argv[1] ?? '');
if (isEntry) runEntry(process, 'bench-raw-worker', main);
