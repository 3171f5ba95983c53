/**
 * Safety rails (issue 12 items 3–4) against a real stack (Redis, Postgres, HTTP, in-process
 * workers): a catastrophic regex in an expression or an input-schema pattern never stalls the
 * process (`/healthz` is polled throughout), sub-runs stop at `MAX_RUN_DEPTH`, a self-recursive
 * definition and a huge one are refused at the API, and `onTimeout: retry` gives up.
 */
import { expect } from 'chai';
import { and, eq, inArray } from 'drizzle-orm';
import { runs, steps } from '../db/index.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

const agents = [sleepAgent];
const CATASTROPHIC = `${'a'.repeat(30)}!`;
/** The issue's bound on how long a bad input may delay `/healthz`. */
const HEALTHZ_BOUND_MS = 200;

describe('safety rails (issue 12)', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async function () {
    stack = await startStack({
      agents,
      config: { limits: { maxRunDepth: 3 } },
    });
  });
  after(async function () {
    await stack?.close();
  });

  const header = (slug: string, input = '{ type: object }') => `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: ${input}\nsteps:\n`;

  async function startRun(slug: string, input: unknown): Promise<string> {
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.id;
  }

  /**
   * Poll `/healthz` back to back while `work` runs; returns the slowest answer in milliseconds
   * (a blocked event loop shows up as a late answer, whichever process serves it).
   */
  async function slowestHealthz<T>(work: () => Promise<T>): Promise<{ slowestMs: number; result: T }> {
    let done = false;
    let slowestMs = 0;
    const poll = (async () => {
      while (!done) {
        const started = performance.now();
        const res = await fetch(`${stack.baseUrl}/healthz`);
        await res.text();
        expect(res.status).to.equal(200);
        slowestMs = Math.max(slowestMs, performance.now() - started);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      const result = await work();
      return { slowestMs, result };
    } finally {
      done = true;
      await poll;
    }
  }

  describe('no input stalls a process', function () {
    it('a catastrophic regex in a step expression: healthz stays prompt, other runs go on', async function () {
      const slug = uniqueSlug('regex');
      await storeDefinition(
        stack,
        `${header(slug)}  - id: probe
    agent: test-sleep
    with: { label: "\${{ $string($contains(input.s, /^(a+)+$/)) }}-\${{ $string($count($match(input.s, /(a|aa)+$/))) }}", delayMs: 1 }
output: { label: "\${{ steps.probe.output.label }}" }
`,
        agents,
      );
      const other = uniqueSlug('other');
      await storeDefinition(stack, `${header(other)}  - id: work\n    agent: test-sleep\n    with: { label: "${other}", delayMs: 1 }\n`, agents);
      const both = async (s: string) => {
        const bad = await startRun(slug, { s });
        const good = await startRun(other, {});
        return { bad: await waitForRun(stack, bad), good: await waitForRun(stack, good) };
      };
      // The same work with a harmless input first: what this (shared, loaded) machine adds anyway.
      const baseline = await slowestHealthz(() => both('aaaa'));
      expect(baseline.result.bad.output).to.deep.equal({ label: 'true-1' });
      const { slowestMs, result } = await slowestHealthz(() => both(CATASTROPHIC));
      expect(result.bad.status).to.equal('completed');
      expect(result.bad.output).to.deep.equal({ label: 'false-0' });
      expect(result.good.status).to.equal('completed');
      // On the backtracking engine this input blocks the process for 30+ s.
      expect(slowestMs).to.be.below(HEALTHZ_BOUND_MS + baseline.slowestMs);
    });

    it('a catastrophic input-schema pattern on POST /v1/runs: a prompt 400 naming the field', async function () {
      const slug = uniqueSlug('pattern');
      await storeDefinition(stack, `${header(slug, '{ type: object, properties: { s: { type: string, pattern: "^(a+)+$" } } }')}  - id: work\n    agent: test-sleep\n    with: { label: "${slug}", delayMs: 1 }\n`, agents);
      const post = (s: string) => api<{ error: { code: string; field?: string; message: string } }>(stack, 'POST', '/v1/runs', { definition: slug, input: { s } });
      const baseline = await slowestHealthz(() => post('b'));
      expect(baseline.result.status).to.equal(400);
      const { slowestMs, result } = await slowestHealthz(() => post(CATASTROPHIC));
      expect(result.status).to.equal(400);
      expect(result.body.error).to.include({ code: 'VALIDATION_FAILED', field: 'input.s' });
      expect(slowestMs).to.be.below(HEALTHZ_BOUND_MS + baseline.slowestMs);
      expect((await api(stack, 'POST', '/v1/runs', { definition: slug, input: { s: 'aaaa' } })).status).to.equal(202);
    });

    it('refuses at the API a regex or pattern the linear-time engine cannot run, naming the field', async function () {
      const slug = uniqueSlug('backref');
      const expression = await postYaml(`${header(slug)}  - id: work\n    agent: test-sleep\n    when: "$contains(input.s, /(a+)+\\\\1/)"\n    with: { label: x, delayMs: 1 }\n`);
      expect(expression.status).to.equal(400);
      expect(expression.body.error.code).to.equal('DEFINITION_INVALID');
      expect(expression.body.error.message).to.match(/\.yaml:8:\d+: .*when.*linear time/);
      const pattern = await postYaml(`${header(slug, '{ type: object, properties: { s: { type: string, pattern: "(?<=a)b" } } }')}  - id: work\n    agent: test-sleep\n    with: { label: x, delayMs: 1 }\n`);
      expect(pattern.status).to.equal(400);
      expect(problemsOf(pattern.body)[0]).to.include({ path: 'input.properties.s.pattern' });
    });
  });

  async function postYaml(yaml: string): Promise<{ status: number; body: { error: { code: string; message: string; details?: { problems?: Array<Record<string, unknown>> } } } }> {
    const response = await fetch(`${stack.baseUrl}/v1/definitions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/yaml' },
      body: yaml,
    });
    return { status: response.status, body: (await response.json()) as { error: { code: string; message: string } } };
  }
  const problemsOf = (body: { error: { details?: { problems?: Array<Record<string, unknown>> } } }) => body.error.details?.problems ?? [];

  describe('definitions', function () {
    it('refuses a step that runs its own definition, with its position', async function () {
      const slug = uniqueSlug('self');
      const res = await postYaml(`${header(slug)}  - id: again\n    type: orchestrator\n    run: { slug: ${slug} }\n`);
      expect(res.status).to.equal(400);
      expect(res.body.error.code).to.equal('DEFINITION_INVALID');
      expect(res.body.error.message).to.match(new RegExp(`${slug}\\.yaml:8:\\d+: step again: runs its own definition`));
      expect(problemsOf(res.body)[0]).to.include({ path: 'steps[0].run.slug', line: 8 });
    });

    it('refuses a definition that runs itself through a stored one (A → B → A), with its position', async function () {
      const a = uniqueSlug('ca');
      const b = uniqueSlug('cb');
      const calling = (slug: string, other: string) => `${header(slug)}  - id: call\n    type: orchestrator\n    run: { slug: ${other} }\n`;
      expect((await postYaml(calling(a, b))).status).to.equal(201);
      const res = await postYaml(calling(b, a));
      expect(res.status).to.equal(400);
      expect(res.body.error.message).to.contain(`${b}.yaml:8:`);
      expect(res.body.error.message).to.contain(`runs ${b} → ${a} → ${b}`);
      expect(problemsOf(res.body)[0]).to.include({ path: 'steps[0].run.slug' });
    });

    it('refuses a 10,000-step definition with 400 and a body over 1 MiB with 413', async function () {
      const lines = [header(uniqueSlug('big')).trimEnd()];
      for (let i = 0; i < 10_000; i++) lines.push(`  - id: s${i}`, '    agent: test-sleep', ...(i > 0 ? [`    needs: [s${i - 1}]`] : []));
      const source = `${lines.join('\n')}\n`;
      expect(Buffer.byteLength(source)).to.be.below(1024 * 1024);
      const heapBefore = process.memoryUsage().rss;
      const started = performance.now();
      const res = await postYaml(source);
      console.log(`      10,000 steps (${Buffer.byteLength(source)} bytes): ${res.status} in ${Math.round(performance.now() - started)} ms, rss ${Math.round(heapBefore / 1e6)} → ${Math.round(process.memoryUsage().rss / 1e6)} MB`);
      expect(res.status).to.equal(400);
      expect(problemsOf(res.body)[0]).to.include({ path: 'steps' });
      expect(res.body.error.message).to.contain('10000 steps; at most 1000');

      const huge = await postYaml(`${header(uniqueSlug('huge'))}  - id: a\n    agent: test-sleep\n    with: { label: "${'x'.repeat(1024 * 1024)}", delayMs: 1 }\n`);
      expect(huge.status).to.equal(413);
    });
  });

  describe('sub-runs', function () {
    it('stop at MAX_RUN_DEPTH: two definitions running each other fail with RUN_DEPTH_EXCEEDED', async function () {
      const ping = uniqueSlug('ping');
      const pong = uniqueSlug('pong');
      const calling = (slug: string, other: string) => `${header(slug)}  - id: call\n    type: orchestrator\n    run: { slug: ${other} }\n`;
      await storeDefinition(stack, calling(ping, pong), agents);
      await storeDefinition(stack, calling(pong, ping), agents);
      const root = await waitForRun(stack, await startRun(ping, {}), 60_000);
      expect(root.status).to.equal('failed');
      const chain = await stack.deps.database.db
        .select()
        .from(runs)
        .where(and(eq(runs.organizationId, stack.organizationId), inArray(runs.definitionSlug, [ping, pong])));
      // Depths 0 (the root) to 3 (MAX_RUN_DEPTH): the fifth run was never started.
      expect(chain).to.have.length(4);
      const parents = new Set(chain.map((r) => r.parentRunId));
      const deepest = chain.find((r) => !parents.has(r.id));
      const [failedStep] = await stack.deps.database.db.select().from(steps).where(eq(steps.runId, deepest?.id ?? ''));
      expect(failedStep?.status).to.equal('failed');
      expect(failedStep?.error).to.include({ code: 'RUN_DEPTH_EXCEEDED' });
    });
  });

  describe('checkpoint deadlines', function () {
    const flow = (slug: string, lines: string[]) =>
      `${header(slug)}  - id: prepare\n    agent: test-sleep\n    with: { label: "${slug}", delayMs: 1 }\n  - id: review\n    type: checkpoint\n    needs: [prepare]\n    prompt: ok?\n    timeout: 1s\n    onTimeout: retry\n    retryStep: prepare\n${lines.map((l) => `    ${l}\n`).join('')}`;

    it('onTimeout: retry retries maxRetries deadlines, then onRetriesExhausted: continue', async function () {
      const slug = uniqueSlug('cpretry');
      await storeDefinition(stack, flow(slug, ['maxRetries: 1', 'onRetriesExhausted: continue']), agents);
      const runId = await startRun(slug, {});
      const run = await waitForRun(stack, runId, 60_000);
      expect(run.status).to.equal('completed');
      expect(run.approvals.map((a) => [a.status, a.decision])).to.deep.equal([
        ['expired', 'retry'],
        ['expired', 'continue'],
      ]);
      const expired = (await runEvents(stack, runId)).filter((e) => e.type === 'checkpoint.expired');
      expect(expired.at(-1)?.data).to.include({ retriesExhausted: true, action: 'continue', maxRetries: 1 });
    });

    it('then aborts by default', async function () {
      const slug = uniqueSlug('cpabort');
      await storeDefinition(stack, flow(slug, ['maxRetries: 0']), agents);
      const runId = await startRun(slug, {});
      const run = await waitFor(async () => {
        const view = await waitForRun(stack, runId, 60_000);
        return view.status === 'cancelled' ? view : undefined;
      }, 60_000, 'cancelled run');
      expect(run.approvals.map((a) => a.decision)).to.deep.equal(['abort']);
    });
  });
});
