/**
 * Reading runs, against real Redis and Postgres: the filtered, cursor-paginated runs list, the
 * audit manifest of a run, and dry runs (a plan, and nothing created).
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { count, eq } from 'drizzle-orm';
import { apiKeys, hashApiKey, organizations, runs, stepAttempts } from '../db/index.js';
import { parseDefinition } from '../definitions/index.js';
import { planDefinition } from '../services/store/index.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';
import type { RunListItem } from '../services/store/index.js';

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

interface RunPage {
  items: RunListItem[];
  nextCursor: string | null;
}

function oneStep(slug: string, options: { fail?: boolean } = {}): string {
  return `
slug: ${slug}
version: 1
name: One step
input: { type: object }
steps:
  - id: only
    agent: test-sleep
    with: { label: "${slug}-only", delayMs: 1${options.fail ? ', fail: true' : ''} }
`;
}

function diamond(slug: string): string {
  return `
slug: ${slug}
version: 1
name: Diamond
input: { type: object }
steps:
  - id: a
    agent: test-sleep
    with: { label: "${slug}-a", delayMs: 1 }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${slug}-b", delayMs: 1 }
  - id: c
    agent: test-sleep
    needs: [a]
    with: { label: "${slug}-c", delayMs: 1 }
  - id: d
    agent: test-sleep
    needs: [b, c]
    with: { label: "${slug}-d", delayMs: 1 }
`;
}

/** prepare → review (checkpoint: continue / retry prepare / abort) → finish. */
function reviewed(slug: string): string {
  return `
slug: ${slug}
version: 1
name: Reviewed
input: { type: object }
steps:
  - id: prepare
    agent: test-sleep
    with: { label: "${slug}-prepare", delayMs: 1 }
  - id: review
    type: checkpoint
    needs: [prepare]
    prompt: "Approve \${{ steps.prepare.output.label }}?"
    decisions: [continue, retry, abort]
    retryStep: prepare
    timeout: 1h
  - id: finish
    agent: test-sleep
    needs: [review]
    with: { label: "${slug}-finish", delayMs: 1 }
`;
}

const KPI_INPUT = { symbols: ['AAPL'], from: '2005-01-01', to: '2009-12-31' };

describe('reading runs', function () {
  let stack: Stack;

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
  });
  after(async function () {
    await stack?.close();
  });

  async function start(slug: string): Promise<string> {
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    expect(res.status).to.equal(202);
    return res.body.id;
  }

  describe('GET /v1/runs', function () {
    let slug: string;
    let failing: string;
    /** Oldest first. */
    let ids: string[];
    let failedId: string;
    /** An instant between the second and the third run. */
    let mark: Date;

    before(async function () {
      slug = uniqueSlug('listed');
      failing = uniqueSlug('listed-fail');
      await storeDefinition(stack, oneStep(slug), [sleepAgent]);
      await storeDefinition(stack, oneStep(failing, { fail: true }), [sleepAgent]);
      ids = [await start(slug), await start(slug)];
      await sleep(50);
      mark = new Date();
      await sleep(50);
      for (let i = 0; i < 3; i += 1) ids.push(await start(slug));
      failedId = await start(failing);
      for (const id of [...ids, failedId]) await waitForRun(stack, id);
    });

    const list = (query: string) => api<RunPage>(stack, 'GET', `/v1/runs?${query}`);

    it('pages through every run, newest first, without duplicates or gaps', async function () {
      const seen: RunListItem[] = [];
      const sizes: number[] = [];
      let cursor: string | null = null;
      do {
        const page: { status: number; body: RunPage } = await list(`definition=${slug}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.status).to.equal(200);
        seen.push(...page.body.items);
        sizes.push(page.body.items.length);
        cursor = page.body.nextCursor;
      } while (cursor && sizes.length < 10);
      expect(sizes).to.deep.equal([2, 2, 1]);
      expect(seen.map((r) => r.id)).to.deep.equal([...ids].reverse());
      const created = seen.map((r) => Date.parse(r.createdAt));
      expect(created).to.deep.equal([...created].sort((a, b) => b - a));
      for (const r of seen) {
        expect(r).to.include({ definition: slug, version: 1, status: 'completed', error: null });
        expect(Object.keys(r).sort()).to.deep.equal(['createdAt', 'definition', 'error', 'finishedAt', 'id', 'startedAt', 'status', 'version']);
        expect(Date.parse(r.finishedAt ?? '')).to.be.at.least(Date.parse(r.startedAt ?? ''));
      }
      // Without filters, the newest run of the organization comes first.
      const all = await list('limit=1');
      expect(all.body.items.map((r) => r.id)).to.deep.equal([failedId]);
      expect(all.body.nextCursor).to.be.a('string');
    });

    it('filters by status (one or several) and by definition', async function () {
      const failed = await list(`status=failed&definition=${failing}`);
      expect(failed.body.items.map((r) => r.id)).to.deep.equal([failedId]);
      expect(failed.body.items[0]?.error?.message).to.contain('failed on purpose');
      expect((await list(`status=failed&definition=${slug}`)).body.items).to.deep.equal([]);
      expect((await list(`status=completed,failed&definition=${slug}`)).body.items).to.have.length(5);
      expect((await list(`status=queued,running&definition=${slug}`)).body.items).to.have.length(0);
      const anyFailed = await list('status=failed&limit=200');
      expect(anyFailed.body.items.map((r) => r.id)).to.include(failedId);
      expect(anyFailed.body.items.every((r) => r.status === 'failed')).to.equal(true);
      expect((await list(`definition=${uniqueSlug('none')}`)).body).to.deep.equal({ items: [], nextCursor: null });
    });

    it('filters by creation time (exclusive bounds, Z or an offset, or a date)', async function () {
      const after = await list(`definition=${slug}&createdAfter=${encodeURIComponent(mark.toISOString())}`);
      expect(after.body.items.map((r) => r.id)).to.deep.equal(ids.slice(2).reverse());
      // The same instant written at +02:00.
      const local = new Date(mark.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00');
      const before = await list(`definition=${slug}&createdBefore=${encodeURIComponent(local)}`);
      expect(before.body.items.map((r) => r.id)).to.deep.equal(ids.slice(0, 2).reverse());
      const window = await list(
        `definition=${slug}&createdAfter=${encodeURIComponent(mark.toISOString())}&createdBefore=${encodeURIComponent(new Date().toISOString())}&limit=2`,
      );
      expect(window.body.items.map((r) => r.id)).to.deep.equal([ids[4], ids[3]]);
      expect((await list(`definition=${slug}&createdAfter=2000-01-01`)).body.items).to.have.length(5);
      expect((await list(`definition=${slug}&createdBefore=2000-01-01`)).body.items).to.have.length(0);
    });

    it("another organization sees none of the organization's runs or definitions", async function () {
      const { db } = stack.deps.database;
      const [org] = await db
        .insert(organizations)
        .values({ slug: uniqueSlug('other-org'), name: 'Other organization' })
        .returning({ id: organizations.id });
      const key = `other_${randomBytes(12).toString('hex')}`;
      await db.insert(apiKeys).values({
        organizationId: org!.id,
        name: 'other',
        keyHash: hashApiKey(key),
        prefix: key.slice(0, 8),
        subject: 'service:other',
        scopes: ['runs:read', 'runs:write', 'definitions:write'],
      });
      const other = { baseUrl: stack.baseUrl, apiKey: key };
      const listed = await api<RunPage>(other, 'GET', '/v1/runs?limit=200');
      expect(listed.status).to.equal(200);
      expect(listed.body.items).to.deep.equal([]);
      // A cursor naming this organization's run pages nothing of the other's.
      const mine = await list(`definition=${slug}&limit=1`);
      expect((await api<RunPage>(other, 'GET', `/v1/runs?cursor=${mine.body.nextCursor}`)).body.items).to.deep.equal([]);
      expect((await api(other, 'GET', `/v1/runs/${ids[0]}`)).status).to.equal(404);
      expect((await api(other, 'GET', `/v1/runs/${ids[0]}/manifest`)).status).to.equal(404);
      expect((await api<{ items: unknown[] }>(other, 'GET', '/v1/definitions')).body.items).to.deep.equal([]);
      expect((await api(other, 'GET', `/v1/definitions/${slug}`)).status).to.equal(404);
      expect((await api(other, 'GET', `/v1/definitions/${slug}/versions/1`)).status).to.equal(404);
      expect((await api(other, 'POST', '/v1/runs?dryRun=true', { definition: 'kpi-tracking', input: KPI_INPUT })).status).to.equal(404);
      // The same slug is independent there: it starts at version 1.
      const created = await api<{ version: number }>(other, 'POST', '/v1/definitions', {
        slug,
        name: 'Theirs',
        input: { type: 'object' },
        steps: [{ id: 'only', agent: 'test-sleep' }],
      });
      expect(created.status).to.equal(201);
      expect(created.body.version).to.equal(1);
      expect((await api<{ versions: unknown[] }>(stack, 'GET', `/v1/definitions/${slug}`)).body.versions).to.have.length(1);
    });

    it('answers 400 naming the parameter for invalid filters', async function () {
      const cases: Array<[string, string]> = [
        ['createdAfter=yesterday', 'createdAfter'],
        ['createdAfter=2024-02-30', 'createdAfter'],
        ['createdAfter=2024-05-01T12:00:00', 'createdAfter'],
        ['createdBefore=2024-05-01T25:00:00Z', 'createdBefore'],
        ['status=done', 'status'],
        ['status=completed,', 'status'],
        ['limit=0', 'limit'],
        ['limit=201', 'limit'],
        ['limit=two', 'limit'],
        ['cursor=not-a-cursor', 'cursor'],
        ['definition=Not_A_Slug', 'definition'],
      ];
      for (const [query, field] of cases) {
        const res = await api<ErrorBody>(stack, 'GET', `/v1/runs?${query}`);
        expect(res.status, query).to.equal(400);
        expect(res.body.error, query).to.include({ code: 'VALIDATION_FAILED', field });
      }
    });
  });

  describe('GET /v1/runs/:id/manifest', function () {
    async function pendingApproval(runId: string, attempt: number): Promise<string> {
      return waitFor(
        async () => {
          const { body } = await api<{ approvals: Array<{ id: string; status: string; attempt: number }> }>(stack, 'GET', `/v1/runs/${runId}`);
          return body.approvals.find((a) => a.status === 'pending' && a.attempt === attempt)?.id;
        },
        15_000,
        `approval attempt ${attempt} of ${runId}`,
      );
    }

    it('holds the run, its definition source, every attempt, every approval response and all events in order', async function () {
      const slug = uniqueSlug('manifest');
      await storeDefinition(stack, reviewed(slug), [sleepAgent]);
      const runId = await start(slug);
      const first = await pendingApproval(runId, 1);
      const retry = await api(stack, 'POST', `/v1/approvals/${first}/decision`, { decision: 'retry', comment: 'once more' });
      expect(retry.status).to.equal(200);
      const second = await pendingApproval(runId, 2);
      expect((await api(stack, 'POST', `/v1/approvals/${second}/decision`, { decision: 'continue' })).status).to.equal(200);
      const finished = await waitForRun(stack, runId);
      expect(finished.status).to.equal('completed');

      const res = await api<{
        manifestVersion: number;
        run: Record<string, unknown>;
        definition: { slug: string; version: number; checksum: string; source: string };
        steps: Array<{
          id: string;
          type: string;
          agent: string | null;
          needs: string[];
          status: string;
          generation: number;
          attempts: Array<{ attempt: number; generation: number; status: string; jobId: string; input: unknown; output: unknown; startedAt: string }>;
        }>;
        approvals: Array<{ id: string; decision: string; attempt: number; responses: Array<{ decision: string; comment: string | null; via: string }> }>;
        events: Array<{ seq: number; type: string }>;
      }>(stack, 'GET', `/v1/runs/${runId}/manifest`);
      expect(res.status).to.equal(200);
      const m = res.body;
      expect(m.manifestVersion).to.equal(1);
      expect(m.run).to.include({ id: runId, status: 'completed', createdBy: 'service:baton-api-key', webhookUrl: null, error: null });
      expect(m.run.input).to.deep.equal({});
      expect(m.run.output).to.deep.equal(finished.output);
      for (const key of ['createdAt', 'startedAt', 'finishedAt']) expect(m.run[key], key).to.be.a('string');
      expect(m.definition).to.include({ slug, version: 1 });
      expect(m.definition.source).to.equal(reviewed(slug));
      expect(m.definition.checksum).to.equal(createHash('sha256').update(m.definition.source).digest('hex'));

      expect(m.steps.map((s) => s.id)).to.deep.equal(['prepare', 'review', 'finish']);
      expect(m.steps[0]).to.include({ type: 'api', agent: 'test-sleep', status: 'completed', generation: 2 });
      expect(m.steps[1]).to.include({ type: 'checkpoint', agent: null, status: 'completed' });
      expect(m.steps[1]?.needs).to.deep.equal(['prepare']);
      // Every row of step_attempts, and nothing else.
      const rows = await stack.deps.database.db.select().from(stepAttempts).where(eq(stepAttempts.runId, runId));
      const flat = m.steps.flatMap((s) => s.attempts.map((a) => `${s.id}#${a.attempt}/${a.generation}:${a.status}:${a.jobId}`));
      expect(flat.sort()).to.deep.equal(rows.map((r) => `${r.stepId}#${r.attempt}/${r.generation}:${r.status}:${r.jobId}`).sort());
      const prepare = m.steps[0]!.attempts;
      expect(prepare.map((a) => [a.attempt, a.generation, a.status])).to.deep.equal([
        [1, 1, 'completed'],
        [2, 2, 'completed'],
      ]);
      expect(prepare[0]?.jobId).to.equal(`${runId}.prepare.1`);
      expect(prepare[1]?.jobId).to.equal(`${runId}.prepare.2`);
      expect(prepare[0]?.input).to.deep.equal({ label: `${slug}-prepare`, delayMs: 1 });
      expect(prepare[1]?.output).to.include({ label: `${slug}-prepare` });

      expect(m.approvals.map((a) => [a.attempt, a.decision])).to.deep.equal([
        [1, 'retry'],
        [2, 'continue'],
      ]);
      expect(m.approvals[0]?.responses).to.have.length(1);
      expect(m.approvals[0]?.responses[0]).to.include({ decision: 'retry', comment: 'once more', via: 'api-key' });
      expect(m.approvals[1]?.responses[0]).to.include({ decision: 'continue' });

      const events = await runEvents(stack, runId);
      expect(m.events).to.deep.equal(events);
      expect(m.events.map((e) => e.seq)).to.deep.equal(m.events.map((_, i) => i + 1));
      expect(m.events[0]?.type).to.equal('run.queued');
      expect(m.events.at(-1)?.type).to.equal('run.completed');
    });

    it('answers 404 for an unknown run', async function () {
      expect((await api(stack, 'GET', '/v1/runs/00000000-0000-4000-8000-000000000000/manifest')).status).to.equal(404);
      expect((await api(stack, 'GET', '/v1/runs/nope/manifest')).status).to.equal(404);
    });
  });

  describe('POST /v1/runs?dryRun=true', function () {
    async function snapshot(): Promise<{ runs: number; jobs: Record<string, number> }> {
      const [row] = await stack.deps.database.db.select({ n: count() }).from(runs).where(eq(runs.organizationId, stack.organizationId));
      return { runs: row?.n ?? -1, jobs: await stack.deps.queues.get('runs').getJobCounts() };
    }

    it('plans kpi-tracking: topological order, parallel groups, its checkpoint — and creates nothing', async function () {
      const before = await snapshot();
      const res = await api<{
        dryRun: boolean;
        definition: { slug: string; version: number };
        plan: {
          order: string[];
          groups: string[][];
          checkpoints: Array<Record<string, unknown>>;
          steps: Array<{ id: string; type: string; agent: string | null; needs: string[]; when?: string }>;
        };
      }>(stack, 'POST', '/v1/runs?dryRun=true', { definition: 'kpi-tracking', input: KPI_INPUT });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.dryRun).to.equal(true);
      expect(res.body.definition).to.deep.equal({ slug: 'kpi-tracking', version: 1 });
      const { plan } = res.body;
      expect(plan.order).to.deep.equal(['load', 'kpis', 'review', 'summary', 'publish']);
      expect(plan.groups).to.deep.equal([['load'], ['kpis'], ['review'], ['summary'], ['publish']]);
      expect(plan.checkpoints).to.have.length(1);
      expect(plan.checkpoints[0]).to.deep.include({
        id: 'review',
        decisions: ['continue', 'retry', 'abort'],
        timeoutMs: 24 * 3600_000,
        approvers: [],
        onTimeout: 'abort',
        retryStep: 'kpis',
      });
      expect(String(plan.checkpoints[0]?.prompt)).to.contain('Review the KPIs');
      expect(plan.steps.map((s) => [s.id, s.type, s.agent])).to.deep.equal([
        ['load', 'tool', 'postgres-agent'],
        ['kpis', 'function', 'kpi-calculator'],
        ['review', 'checkpoint', null],
        ['summary', 'context', 'summarizer'],
        ['publish', 'api', 'marketing-swarm'],
      ]);
      expect(plan.steps.find((s) => s.id === 'publish')?.when).to.contain('$exists(input.publishUrl)');
      expect(plan.steps.find((s) => s.id === 'load')).not.to.have.property('when');
      // Also with a version, and with an Idempotency-Key: still nothing is created.
      const pinned = await api(stack, 'POST', '/v1/runs?dryRun=1', { definition: 'kpi-tracking', version: 1, input: KPI_INPUT }, { 'idempotency-key': uniqueSlug('dry') });
      expect(pinned.status).to.equal(200);
      expect(await snapshot()).to.deep.equal(before);
    });

    it('groups a diamond as [[a], [b, c], [d]]', async function () {
      const slug = uniqueSlug('dry-diamond');
      await storeDefinition(stack, diamond(slug), [sleepAgent]);
      const res = await api<{ plan: { order: string[]; groups: string[][]; checkpoints: unknown[] } }>(stack, 'POST', '/v1/runs?dryRun=true', {
        definition: slug,
        input: {},
      });
      expect(res.status).to.equal(200);
      expect(res.body.plan.order).to.deep.equal(['a', 'b', 'c', 'd']);
      expect(res.body.plan.groups).to.deep.equal([['a'], ['b', 'c'], ['d']]);
      expect(res.body.plan.checkpoints).to.deep.equal([]);
    });

    it('levels steps by their deepest need, whatever the file order', function () {
      const definition = parseDefinition(
        `
slug: levels
version: 1
name: Levels
input: { type: object }
steps:
  - { id: late, agent: test-sleep, needs: [mid, root2] }
  - { id: mid, agent: test-sleep, needs: [root1] }
  - { id: root1, agent: test-sleep }
  - { id: root2, agent: test-sleep }
  - { id: side, agent: test-sleep, needs: [root2] }
`,
        { file: 'levels.yaml', agents: new Map([['test-sleep', 'api']]) },
      );
      const plan = planDefinition(definition);
      expect(plan.order).to.deep.equal(['root1', 'mid', 'root2', 'late', 'side']);
      expect(plan.groups).to.deep.equal([['root1', 'root2'], ['mid', 'side'], ['late']]);
    });

    it('validates like a real start: 400 naming the field, 404 for unknown definitions — and creates nothing', async function () {
      const before = await snapshot();
      const badInput = await api<ErrorBody>(stack, 'POST', '/v1/runs?dryRun=true', {
        definition: 'kpi-tracking',
        input: { ...KPI_INPUT, from: '2005-13-45' },
      });
      expect(badInput.status).to.equal(400);
      expect(badInput.body.error).to.include({ code: 'VALIDATION_FAILED', field: 'input.from' });
      const missing = await api<ErrorBody>(stack, 'POST', '/v1/runs?dryRun=true', { input: {} });
      expect(missing.status).to.equal(400);
      expect(missing.body.error.field).to.equal('definition');
      const unknown = await api<ErrorBody>(stack, 'POST', '/v1/runs?dryRun=true', { definition: uniqueSlug('nope'), input: {} });
      expect(unknown.status).to.equal(404);
      const noVersion = await api<ErrorBody>(stack, 'POST', '/v1/runs?dryRun=true', { definition: 'kpi-tracking', version: 99, input: KPI_INPUT });
      expect(noVersion.status).to.equal(404);
      expect(noVersion.body.error.field).to.equal('version');
      const badFlag = await api<ErrorBody>(stack, 'POST', '/v1/runs?dryRun=maybe', { definition: 'kpi-tracking', input: KPI_INPUT });
      expect(badFlag.status).to.equal(400);
      expect(badFlag.body.error.field).to.equal('dryRun');
      expect(await snapshot()).to.deep.equal(before);
    });
  });
});
