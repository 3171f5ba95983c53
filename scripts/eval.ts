/**
 * The evaluation harness, `npm run eval [-- --update] [-- --only <case>]`.
 *
 * Runs every case of `eval/cases/*.yaml` — each example definition of `definitions/` at least once
 * (the definitions guard checks that), code-change on both fixture repositories — through the real
 * stack: the HTTP API and BullMQ workers in this process (test/support/stack.ts) on the real Redis
 * and Postgres, in a database and queue prefix of its own (dropped at the end). Provider calls go
 * to the local fakes of test/support/fakes.ts: chat completions answer from the recordings in
 * `eval/recordings/chat-completions.json`, images are the fakes' deterministic PNGs, webhooks land
 * on a local receiver and a fake n8n. Approvals are decided by the harness, as the case's
 * `decisions: {<stepId>: [decision | {decision, input}]}` say (default `continue`), for the run
 * and its child runs.
 *
 * Each case's normalised result — status, output, the assets of its runs (images and diffs with
 * their SHA-256), the text of every unified diff, and the decisions taken — is compared with `eval/goldens/<case>.json` (`--update` rewrites them).
 * Normalised: UUIDs, timestamps, durations, loopback ports and temporary paths. Every run's
 * manifest and a summary table go to `.runs/<timestamp>/` (git-ignored). Exit code 1 on any
 * mismatch or failure.
 *
 * The codekit bundle is built first when `npm run build` never ran.
 *
 * Case file: `{name, definition, input, decisions?, timeoutMs?}`; in `input`, `{$fixtureRepo:
 * <name>}` becomes `{files}` of `fixtures/repos/<name>`, and `{{receiver}}` / `{{n8n}}` in strings
 * become the local receiver's / fake n8n's URL.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { parse as parseYaml } from 'yaml';
import { projectRoot, runEntry } from '../lib/index.js';
import { codekitBundlePath } from '../agents/function/codekit/bundle-path.js';
import { buildCodekit } from './build-codekit.js';
import { destroyTestEnvironment } from '../test/support/environment.js';
import { startFakeGoogle, startFakeN8n, startFakeOpenAI, type ChatAnswer, type FakeServer } from '../test/support/fakes.js';
import { startReceiver, type Receiver } from '../test/support/receiver.js';
import { fixtureRepo } from '../test/support/repos.js';
import { api, startStack, type Stack } from '../test/support/stack.js';

/** One case of `eval/cases/`. */
interface EvalCase {
  name: string;
  definition: string;
  input: unknown;
  decisions?: Record<string, Array<string | { decision: string; input?: unknown; comment?: string }>>;
  timeoutMs?: number;
}

/** What is compared with the golden. */
interface CaseResult {
  definition: string;
  status: string;
  output: unknown;
  error: unknown;
  decisions: Array<{ run: string; step: string; decision: string }>;
  /** Every asset of the run tree: name, type and (for images and diffs, whose bytes are deterministic) size and SHA-256. */
  assets: Array<{ key: string; mimeType: string; bytes?: number; sha256?: string }>;
  diffs: Record<string, string>;
}

interface Recordings {
  bySchemaName: Record<string, unknown>;
}

const ROOT = projectRoot();
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Replace what differs between runs of the same case. */
function normalize(value: unknown): unknown {
  if (typeof value === 'string') {
    return value
      .replace(UUID, '<uuid>')
      .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})/g, '<time>')
      .replace(/(127\.0\.0\.1|localhost):\d+/g, '$1:<port>')
      .replace(/duration_ms [\d.]+/g, 'duration_ms <ms>')
      .replace(/\/tmp\/baton-repo-[A-Za-z0-9]+/g, '<tmp>');
  }
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (key === 'durationMs' || key === 'network') out[key] = '<env>';
      else if (key === 'usage') out[key] = '<usage>';
      else out[key] = normalize(v);
    }
    return out;
  }
  return value;
}

/** Replace `$fixtureRepo` objects and `{{receiver}}` / `{{n8n}}` in the case input. */
async function materialize(value: unknown, urls: Record<string, string>): Promise<unknown> {
  if (typeof value === 'string') return value.replace(/\{\{(\w+)\}\}/g, (all, name: string) => urls[name] ?? all);
  if (Array.isArray(value)) return Promise.all(value.map((v) => materialize(v, urls)));
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record['$fixtureRepo'] === 'string') return { files: await fixtureRepo(record['$fixtureRepo']) };
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(record)) out[key] = await materialize(v, urls);
    return out;
  }
  return value;
}

/** The chat answer of the recordings: by json_schema name, a list matched by the last user message. */
function recordedChat(recordings: Recordings): ChatAnswer {
  return (body) => {
    const format = body.response_format as { type?: string; json_schema?: { name?: string } } | undefined;
    if (format?.type !== 'json_schema') return undefined;
    const recorded = recordings.bySchemaName[format.json_schema?.name ?? 'output'];
    if (recorded === undefined) return undefined;
    if (!Array.isArray(recorded)) return JSON.stringify(recorded);
    const user = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user')?.content ?? '';
    const hit = (recorded as Array<{ whenUserContains: string; answer: unknown }>).find((r) => user.includes(r.whenUserContains));
    return hit ? JSON.stringify(hit.answer) : undefined;
  };
}

interface RunTreeView {
  id: string;
  status: string;
  output: unknown;
  error: unknown;
  children: Array<{ id: string }>;
}

/** `decisions` grouped by run label (stable: each run's decisions keep the order they were taken in). */
function byRun(decisions: CaseResult['decisions']): CaseResult['decisions'] {
  return [...decisions].sort((a, b) => a.run.localeCompare(b.run));
}

/** Run one case to its end, deciding its approvals. */
async function runCase(stack: Stack, testCase: EvalCase, urls: Record<string, string>): Promise<{ runId: string; result: CaseResult; ms: number }> {
  const started = Date.now();
  const input = await materialize(testCase.input, urls);
  const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: testCase.definition, input });
  if (res.status !== 202) throw new Error(`${testCase.name}: POST /v1/runs answered ${res.status}: ${JSON.stringify(res.body)}`);
  const runId = res.body.id;
  const queues = new Map(Object.entries(testCase.decisions ?? {}).map(([step, list]) => [step, [...list]]));
  const decisions: CaseResult['decisions'] = [];
  const deadline = Date.now() + (testCase.timeoutMs ?? 120_000);
  const runIds = new Map<string, string>([[runId, 'run']]);
  for (;;) {
    const view = (await api<RunTreeView>(stack, 'GET', `/v1/runs/${runId}`)).body;
    for (const child of view.children ?? []) if (!runIds.has(child.id)) runIds.set(child.id, `child ${runIds.size}`);
    if (['completed', 'failed', 'cancelled'].includes(view.status)) {
      const { diffs, assets } = await runAssets(stack, [...runIds.keys()], runIds);
      return {
        runId,
        // Runs reach their checkpoints concurrently, so which one a poll sees first is timing:
        // the decisions are listed per run (in run-label order), each run's in the order taken.
        result: { definition: testCase.definition, status: view.status, output: view.output, error: view.error, decisions: byRun(decisions), assets, diffs },
        ms: Date.now() - started,
      };
    }
    if (Date.now() > deadline) throw new Error(`${testCase.name}: run ${runId} still ${view.status} after ${testCase.timeoutMs ?? 120_000} ms`);
    const pending = (await api<{ items: Array<{ id: string; runId: string; stepId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200')).body.items;
    for (const approval of pending.filter((a) => runIds.has(a.runId)).sort((a, b) => (runIds.get(a.runId) ?? '').localeCompare(runIds.get(b.runId) ?? ''))) {
      const next = queues.get(approval.stepId)?.shift() ?? 'continue';
      const body = typeof next === 'string' ? { decision: next, comment: 'decided by npm run eval' } : { comment: 'decided by npm run eval', ...next };
      const decided = await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, body);
      if (decided.status !== 200) throw new Error(`${testCase.name}: decision on ${approval.stepId} answered ${decided.status}: ${JSON.stringify(decided.body)}`);
      decisions.push({ run: runIds.get(approval.runId) ?? '?', step: approval.stepId, decision: body.decision });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The assets of the runs (see {@link CaseResult.assets}) and the text of every `text/x-diff` one, by `<run label>/<step>/<name>`. */
async function runAssets(
  stack: Stack,
  runIds: string[],
  labels: ReadonlyMap<string, string>,
): Promise<Pick<CaseResult, 'diffs' | 'assets'>> {
  const diffs: Record<string, string> = {};
  const assets: CaseResult['assets'] = [];
  for (const runId of runIds) {
    const { body } = await api<{ items: Array<{ id: string; stepId: string; name: string; mimeType: string; bytes: number; sha256: string; createdAt: string }> }>(
      stack,
      'GET',
      `/v1/runs/${runId}/assets`,
    );
    const seen = new Set<string>();
    // Items of a fan-out finish in any order: keys follow (step, name, content), never time.
    for (const asset of [...body.items].sort((a, b) => a.stepId.localeCompare(b.stepId) || a.name.localeCompare(b.name) || a.sha256.localeCompare(b.sha256))) {
      let key = `${labels.get(runId) ?? runId}/${asset.stepId}/${asset.name}`;
      for (let n = 2; seen.has(key); n += 1) key = `${labels.get(runId) ?? runId}/${asset.stepId}/${asset.name}#${n}`;
      seen.add(key);
      const deterministic = asset.mimeType.startsWith('image/') || asset.mimeType.startsWith('text/x-diff');
      assets.push({ key, mimeType: asset.mimeType, ...(deterministic ? { bytes: asset.bytes, sha256: asset.sha256 } : {}) });
      if (!asset.mimeType.startsWith('text/x-diff')) continue;
      const response = await fetch(`${stack.baseUrl}/v1/runs/${runId}/assets/${asset.id}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
      diffs[key] = await response.text();
    }
  }
  assets.sort((a, b) => a.key.localeCompare(b.key));
  return { diffs: Object.fromEntries(Object.entries(diffs).sort(([a], [b]) => a.localeCompare(b))), assets };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const update = args.includes('--update');
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const casesDir = join(ROOT, 'eval', 'cases');
  const goldensDir = join(ROOT, 'eval', 'goldens');
  const cases: EvalCase[] = [];
  for (const file of (await readdir(casesDir)).filter((f) => f.endsWith('.yaml')).sort()) {
    const parsed = parseYaml(await readFile(join(casesDir, file), 'utf8')) as EvalCase;
    if (!only || parsed.name === only) cases.push(parsed);
  }
  // A clean clone that was never built still evaluates: the codemods need the codekit bundle.
  if (!existsSync(codekitBundlePath())) await buildCodekit();
  const recordings = JSON.parse(await readFile(join(ROOT, 'eval', 'recordings', 'chat-completions.json'), 'utf8')) as Recordings;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = join(ROOT, '.runs', stamp);
  await mkdir(outDir, { recursive: true });

  const openaiKey = 'sk-eval-openai';
  const googleKey = 'eval-google-key';
  const fakes: FakeServer[] = [];
  let stack: Stack | undefined;
  let receiver: Receiver | undefined;
  const rows: Array<{ name: string; definition: string; status: string; ms: number; verdict: string }> = [];
  try {
    const openai = await startFakeOpenAI({ apiKey: openaiKey, chat: recordedChat(recordings) });
    const google = await startFakeGoogle({ apiKey: googleKey });
    const n8n = await startFakeN8n({ answer: () => ({ ok: true, workflow: 'campaign-launch' }) });
    fakes.push(openai, google, n8n);
    stack = await startStack({
      config: {
        agentEnv: { OPENAI_BASE_URL: openai.url, GOOGLE_API_BASE_URL: google.url, MARKETING_SWARM_URL: n8n.url },
        llm: { baseUrl: openai.url, apiKey: openaiKey, model: 'gpt-4o-mini', timeoutMs: 10_000 },
      },
    });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
    for (const [name, value] of [
      ['OPENAI_API_KEY', openaiKey],
      ['GOOGLE_API_KEY', googleKey],
    ]) {
      const stored = await api(stack, 'POST', '/v1/secrets', { name, value });
      if (stored.status !== 201) throw new Error(`storing ${name}: ${stored.status}`);
    }
    const urls = { receiver: receiver.url, n8n: n8n.url };
    for (const testCase of cases) {
      let verdict: string;
      let status = 'error';
      let ms = 0;
      try {
        const run = await runCase(stack, testCase, urls);
        status = run.result.status;
        ms = run.ms;
        const manifest = await api(stack, 'GET', `/v1/runs/${run.runId}/manifest`);
        await writeFile(join(outDir, `${testCase.name}.manifest.json`), `${JSON.stringify(manifest.body, null, 2)}\n`);
        const actual = `${JSON.stringify(normalize(run.result), null, 2)}\n`;
        await writeFile(join(outDir, `${testCase.name}.result.json`), actual);
        const goldenFile = join(goldensDir, `${testCase.name}.json`);
        const golden = await readFile(goldenFile, 'utf8').catch(() => undefined);
        if (update) {
          await writeFile(goldenFile, actual);
          verdict = golden === actual ? 'same' : 'updated';
        } else if (golden === undefined) {
          verdict = 'MISSING GOLDEN';
        } else if (golden !== actual) {
          verdict = 'MISMATCH';
          process.stderr.write(createTwoFilesPatch(`eval/goldens/${testCase.name}.json`, `.runs/${stamp}/${testCase.name}.result.json`, golden, actual));
        } else {
          verdict = 'ok';
        }
      } catch (err) {
        verdict = `ERROR: ${err instanceof Error ? err.message : String(err)}`;
      }
      rows.push({ name: testCase.name, definition: testCase.definition, status, ms, verdict });
      process.stdout.write(`${verdict.padEnd(8)} ${testCase.name} (${testCase.definition}) ${status} in ${ms} ms\n`);
    }
  } finally {
    await receiver?.close();
    await stack?.close();
    for (const fake of fakes) await fake.close();
    await destroyTestEnvironment();
  }
  const table = [
    '| case | definition | status | wall ms | golden |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.definition} | ${r.status} | ${r.ms} | ${r.verdict} |`),
  ].join('\n');
  await writeFile(join(outDir, 'summary.md'), `# npm run eval ${stamp}\n\n${table}\n`);
  await writeFile(join(outDir, 'summary.json'), `${JSON.stringify(rows, null, 2)}\n`);
  const failed = rows.filter((r) => !['ok', 'same', 'updated'].includes(r.verdict)).length;
  process.stdout.write(`\n${table}\n\nmanifests and summary: .runs/${stamp}/\neval: ${rows.length - failed} passed, ${failed} failed\n`);
  return failed === 0 && rows.length > 0 ? 0 : 1;
}

runEntry(process, 'eval', main, { exitOnSuccess: true });
