/**
 * The function-step phase of `npm run bench` (`-- --only function` runs it alone): the overhead
 * per call of the worker-thread function runtime, for a trivial `main`, against the same
 * function called in-process (plain JS, and the in-process QuickJS sandbox). No services needed.
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createFunctionRuntime, runInSandbox, type AgentContext } from '../agents/index.js';
import { silentLogger, type Config } from '../lib/index.js';

const TRIVIAL = 'function main(input) { return { n: input.n + 1 }; }';
const LIMITS = { timeoutMs: 5_000, memoryMb: 16 };
const WARMUP_CALLS = 50;

/** p50/p99/max of durations in ms, printed with µs precision. */
function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  const ms = (v: number): string => `${v.toFixed(3)} ms`;
  return `p50 ${ms(at(50))} · p99 ${ms(at(99))} · max ${ms(sorted.at(-1) ?? NaN)} (n=${sorted.length})`;
}

/** A context with what a trivial `main` needs (no host calls are made). */
function benchContext(): AgentContext {
  const unused = (): never => {
    throw new Error('not available in the bench');
  };
  return {
    runId: 'bench',
    stepId: 'bench',
    attempt: 1,
    idempotencyKey: 'bench.bench.0',
    signal: new AbortController().signal,
    logger: silentLogger(),
    sql: unused as unknown as AgentContext['sql'],
    llm: { baseUrl: undefined, apiKey: undefined, model: 'bench', timeoutMs: 1000 },
    run: { id: 'bench', definition: { slug: 'bench', version: 1 } },
    env: {},
    secrets: {},
    http: unused,
    assets: { saveBuffer: unused },
    deliverables: { create: unused },
    progress: unused,
    functions: { run: unused },
    moduleCode: unused,
  };
}

/** Time `calls` calls of `call`, `concurrency` in flight at once; returns per-call ms and wall ms. */
async function timeCalls(calls: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<{ ms: number[]; wallMs: number }> {
  const ms: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        const i = next++;
        const t0 = performance.now();
        await call(i);
        ms.push(performance.now() - t0);
      }
    }),
  );
  return { ms, wallMs: performance.now() - started };
}

/**
 * Run the function-runtime phase and print its lines.
 * @param config - the loaded config (`functions.threads`, `steps.outputMaxBytes`).
 * @param calls - calls per measurement.
 * @param log - where lines go.
 */
export async function benchFunctionRuntime(config: Config, calls: number, log: (line: string) => void): Promise<void> {
  const threads = config.functions.threads;
  log(`\n== function steps: overhead per call of a trivial main (${calls} calls each)`);
  log(`load: ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' / ')}, no other bench traffic; thread pool of ${threads}`);

  // In-process references.
  // The baseline is the same source evaluated in-process, without the sandbox: eval is the point.
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const plain = (new Function(`${TRIVIAL}; return main;`) as () => (input: { n: number }) => unknown)();
  const inline = await timeCalls(calls, 1, (i) => Promise.resolve(plain({ n: i })));
  log(`in-process JS call:              ${summary(inline.ms)}`);
  for (let i = 0; i < WARMUP_CALLS; i += 1) await runInSandbox(TRIVIAL, { n: i }, { timeoutMs: 5_000, memoryBytes: 16 * 1024 * 1024 });
  const sandbox = await timeCalls(calls, 1, (i) => runInSandbox(TRIVIAL, { n: i }, { timeoutMs: 5_000, memoryBytes: 16 * 1024 * 1024 }));
  log(`in-process QuickJS (runInSandbox, blocks the event loop): ${summary(sandbox.ms)}`);

  const runtime = createFunctionRuntime({
    threads,
    maxTimeoutMs: config.functions.maxTimeoutMs,
    maxMemoryMb: config.functions.maxMemoryMb,
    outputMaxBytes: config.steps.outputMaxBytes,
    logger: silentLogger(),
  });
  const ctx = benchContext();
  try {
    await timeCalls(WARMUP_CALLS * threads, threads, (i) => runtime.run(TRIVIAL, { n: i }, LIMITS, ctx));
    for (const concurrency of [1, threads, threads * 4]) {
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const pooled = await timeCalls(calls, concurrency, (i) => runtime.run(TRIVIAL, { n: i }, LIMITS, ctx));
      delay.disable();
      const perSecond = Math.round((calls / pooled.wallMs) * 1000);
      log(
        `thread pool, ${String(concurrency).padStart(2)} in flight:       ${summary(pooled.ms)} · ${perSecond} calls/s · ` +
          `caller event-loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`,
      );
    }
  } finally {
    await runtime.close();
  }
}
