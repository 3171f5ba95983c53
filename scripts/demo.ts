/**
 * `npm run demo`: the KPI-tracking run end to end, through the real architecture.
 *
 * Runs `release`, starts one `web` and two `worker` processes from the Procfile's own lines,
 * POSTs a KPI run for AAPL and MSFT (2005-01-01 … 2009-12-31) over HTTP, receives the signed
 * checkpoint webhook on a local receiver (signature verified), approves through `decideUrl`,
 * follows the SSE stream, prints the KPI table and the summary, stops what it started, and
 * exits 0 — or non-zero with a message saying what failed.
 */
import { createServer } from 'node:http';
import { createParser } from 'eventsource-parser';
import { Webhook } from 'standardwebhooks';
import type { SymbolKpis } from '../agents/index.js';
import { loadConfig, runEntry } from '../lib/index.js';
import { StackError, checkServices, listen, readBody, stackEnvironment, startLocalStack, stopOnSignal, type LocalStack } from './local-stack.js';

const DEMO_TIMEOUT_MS = 180_000;
const startedAt = Date.now();
const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(2).padStart(6)}s`;
const say = (line: string) => process.stdout.write(`${elapsed()}  ${line}\n`);


interface StreamEvent {
  seq: number;
  type: string;
  stepId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

function kpiTable(kpis: Record<string, SymbolKpis>): string {
  const f = (n: number | null | undefined, digits = 2) => (n === null || n === undefined ? '—' : n.toFixed(digits));
  const header = ['symbol', 'first', 'last', 'total %', 'CAGR %', 'max DD %', 'vol %', 'best month', 'worst month'];
  const rows = Object.entries(kpis).map(([symbol, k]) => [
    symbol,
    f(k.firstPrice),
    f(k.lastPrice),
    f(k.totalReturnPct),
    f(k.cagrPct),
    f(k.maxDrawdownPct),
    f(k.volatilityPct),
    k.bestMonth ? `${k.bestMonth.date} ${f(k.bestMonth.returnPct)}%` : '—',
    k.worstMonth ? `${k.worstMonth.date} ${f(k.worstMonth.returnPct)}%` : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Step-to-step latency: from a step's completion to the start of each step that needed it. */
function latencies(events: StreamEvent[], needs: Record<string, string[]>): string[] {
  const at = (type: string, stepId: string) => {
    const e = events.find((x) => x.type === type && x.stepId === stepId);
    return e ? Date.parse(e.createdAt) : undefined;
  };
  const out: string[] = [];
  for (const [stepId, deps] of Object.entries(needs)) {
    for (const dep of deps) {
      const done = at('step.completed', dep);
      const started = at('step.started', stepId);
      if (done !== undefined && started !== undefined) out.push(`${dep} → ${stepId}: ${started - done} ms`);
    }
  }
  const resolved = events.find((e) => e.type === 'checkpoint.resolved');
  const reviewDone = at('step.completed', 'review');
  if (resolved && reviewDone !== undefined) {
    out.push(`approval decided → review completed: ${reviewDone - Date.parse(resolved.createdAt)} ms`);
  }
  return out;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const shutdown = stopOnSignal(process, 'demo', config);
  const env = await stackEnvironment(config);
  const base = env.BATON_PUBLIC_URL ?? '';
  const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };

  await checkServices(env);
  say('Redis and PostgreSQL answer');

  // Local receiver: signed webhooks (verified) and the publish endpoint of marketing-swarm.
  const verifier = new Webhook(env.BATON_WEBHOOK_SECRET ?? '');
  const published: Array<{ idempotencyKey: string | undefined; body: unknown }> = [];
  let resolveCheckpoint: (approval: Record<string, unknown>) => void = () => undefined;
  const checkpoint = new Promise<Record<string, unknown>>((r) => (resolveCheckpoint = r));
  let webhooksVerified = 0;
  const receiver = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (req.url === '/webhooks') {
        try {
          const message = verifier.verify(body, req.headers as Record<string, string>) as { type: string; data: { approval?: Record<string, unknown> } };
          webhooksVerified += 1;
          if (message.type === 'checkpoint.requested' && message.data.approval) resolveCheckpoint(message.data.approval);
          res.writeHead(204).end();
        } catch (err) {
          say(`receiver: REJECTED a webhook with a bad signature (${(err as Error).message})`);
          res.writeHead(401).end();
        }
        return;
      }
      if (req.url === '/publish') {
        published.push({ idempotencyKey: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(body) as unknown });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: true }));
        return;
      }
      res.writeHead(404).end();
    })();
  });
  const receiverPort = await listen(receiver);
  const receiverUrl = `http://127.0.0.1:${receiverPort}`;

  let stack: LocalStack | undefined;
  try {
    stack = await startLocalStack(env, 2, say);
    const started = stack;
    shutdown.register('local stack', () => started.stop());
    const input = { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31', publishUrl: `${receiverUrl}/publish` };
    const created = await fetch(`${base}/v1/runs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ definition: 'kpi-tracking', input, webhookUrl: `${receiverUrl}/webhooks` }),
    });
    const run = (await created.json()) as { id?: string; error?: { message: string } };
    if (created.status !== 202 || !run.id) throw new StackError(`POST /v1/runs answered ${created.status}: ${JSON.stringify(run)}`);
    say(`POST /v1/runs → 202, run ${run.id}`);

    // Approve as soon as the signed checkpoint webhook arrives.
    const approved = checkpoint.then(async (approval) => {
      say(`webhook checkpoint.requested (signature verified): "${String(approval.prompt)}"`);
      const decision = await fetch(String(approval.decideUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'continue', comment: 'KPIs reviewed by the demo' }),
      });
      if (!decision.ok) throw new StackError(`decision via decideUrl answered ${decision.status}: ${await decision.text()}`);
      say('approved through decideUrl → 200');
    });

    // Follow the SSE stream until the terminal event.
    const events: StreamEvent[] = [];
    const stream = await fetch(`${base}/v1/runs/${run.id}/stream`, { headers });
    if (!stream.ok || !stream.body) throw new StackError(`GET /stream answered ${stream.status}`);
    const parser = createParser({
      onEvent(message) {
        const e = JSON.parse(message.data) as StreamEvent;
        events.push(e);
        const detail = e.type === 'step.failed' || e.type === 'run.failed' ? ` ${JSON.stringify(e.data.error)}` : '';
        say(`sse #${message.id} ${e.type}${e.stepId ? ` [${e.stepId}]` : ''}${detail}`);
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of stream.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    await approved;

    const final = events.at(-1);
    if (final?.type !== 'run.completed') throw new StackError(`the run ended with ${final?.type ?? 'no terminal event'}`);
    const view = (await (await fetch(`${base}/v1/runs/${run.id}`, { headers })).json()) as {
      output: { kpis: Record<string, SymbolKpis>; summary: { text: string; provider: string } };
      steps: Array<{ id: string; needs: string[]; status: string }>;
    };
    process.stdout.write(`\nKPIs (monthly closes, ${input.from} … ${input.to}):\n${kpiTable(view.output.kpis)}\n`);
    process.stdout.write(`\nSummary (provider: ${view.output.summary.provider}):\n${view.output.summary.text}\n`);
    process.stdout.write(`\nSteps: ${view.steps.map((s) => `${s.id}=${s.status}`).join(', ')}\n`);
    process.stdout.write(`Published to the receiver: ${published.length} request(s), Idempotency-Key ${published[0]?.idempotencyKey ?? '—'}\n`);
    process.stdout.write(`Webhooks received and verified: ${webhooksVerified}\n`);
    const needs = Object.fromEntries(view.steps.map((s) => [s.id, s.needs]));
    process.stdout.write(`Latency (from the run's events):\n  ${latencies(events, needs).join('\n  ')}\n`);
    process.stdout.write(`Wall time: ${((Date.now() - startedAt) / 1000).toFixed(2)} s\n\n`);
  } finally {
    await stack?.stop();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  }
  say('stopped web and workers; demo passed');
}

runEntry(process, 'demo failed', main, { exitOnSuccess: true, deadlineMs: DEMO_TIMEOUT_MS });
