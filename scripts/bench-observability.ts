/**
 * Micro-benchmark of the observability cost of one step attempt: `observeAttempt` (the
 * `baton_step_duration_seconds` histogram, and with tracing on the attempt's span, exported over
 * OTLP/HTTP to a local sink) around a trivial agent call, against the bare call. The run's trace
 * carrier is cached per worker process after its first lookup; a stand-in answers that lookup.
 * Run: `node --import tsx scripts/bench-observability.ts` (no services needed).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadConfig, startTelemetry } from '../lib/index.js';
import { observeAttempt } from '../workers/observability.js';
import type { WorkerDeps } from '../workers/deps.js';

const CALLS = 200_000;
const WARMUP = 20_000;
const agentCall = () => Promise.resolve(1);
const who = { runId: '00000000-0000-4000-8000-000000000000', stepId: 'bench', attempt: 1, agentType: 'function' };
const carrier = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
const deps = {
  database: { db: { select: () => ({ from: () => ({ where: () => Promise.resolve([{ traceContext: carrier }]) }) }) } },
} as unknown as WorkerDeps;

/** Mean µs per call of `f` over CALLS sequential calls (after WARMUP). */
async function perCallUs(f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP; i += 1) await f();
  const started = performance.now();
  for (let i = 0; i < CALLS; i += 1) await f();
  return ((performance.now() - started) * 1000) / CALLS;
}

const sink = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('{}'));
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const bare = await perCallUs(agentCall);
const metrics = await perCallUs(() => observeAttempt(deps, who, agentCall));
const telemetry = startTelemetry(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}` }).telemetry, 'worker');
const traced = await perCallUs(() => observeAttempt(deps, who, agentCall));
await telemetry.shutdown();
sink.close();
console.log(`load average ${loadavg()[0]?.toFixed(1)}; ${CALLS} calls each`);
console.log(`bare agent call:           ${bare.toFixed(2)} µs`);
console.log(`+ metrics (tracing off):   ${metrics.toFixed(2)} µs  (overhead ${(metrics - bare).toFixed(2)} µs)`);
console.log(`+ metrics + tracing:       ${traced.toFixed(2)} µs  (overhead ${(traced - bare).toFixed(2)} µs)`);
