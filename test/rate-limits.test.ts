/**
 * The run-start rate limit (issue 12 item 2) from outside: 2,000 quick `POST /v1/runs` from one
 * organization get 429 `RATE_LIMITED` with `Retry-After` and RateLimit headers once its bucket is
 * empty, while another organization is unaffected; a key with its own limit has its own bucket;
 * dry runs are not counted; and two API processes on the same prefix share one bucket.
 */
import type { ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import type { Response } from 'express';
import { UnavailableError } from '../lib/index.js';
import { createRedis } from '../queues/index.js';
import { RunRateLimiter } from '../services/api/rate-limit.js';
import { parseDefinition } from '../definitions/index.js';
import { syncDefinitions } from '../services/store/index.js';
import { exited, spawnProcess } from '../scripts/procfile.js';
import { testEnvironment } from './support/environment.js';
import { freePort } from './support/private-services.js';
import { otherOrganization } from './support/organizations.js';
import { api, waitFor, startStack, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

type Client = { baseUrl: string; apiKey: string };

/** Status and headers of one `POST /v1/runs`. */
async function startRun(client: Client, slug: string, query = ''): Promise<{ status: number; headers: Headers; body: { error?: { code: string; details?: Record<string, unknown> } } }> {
  const res = await fetch(`${client.baseUrl}/v1/runs${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ definition: slug, input: {} }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { error?: { code: string } } };
}

/** `count` starts in parallel batches of `batch`, round-robin over `clients`. */
async function burst(clients: Client[], slug: string, count: number, batch = 50) {
  const results: Array<Awaited<ReturnType<typeof startRun>> & { client: number }> = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const round = await Promise.all(
      Array.from({ length: n }, async (_, j) => {
        const client = (i + j) % clients.length;
        const target = clients[client];
        if (!target) throw new Error('no client');
        return { ...(await startRun(target, slug)), client };
      }),
    );
    results.push(...round);
  }
  return results;
}

describe('run-start rate limit (RATE_LIMIT_RUNS_PER_MINUTE)', function () {
  this.timeout(180_000);
  const LIMIT = 40;
  let stack: Stack;

  before(async function () {
    // No workers: accepted runs stay queued; only their creation is under test.
    stack = await startStack({ workers: false, agents: [sleepAgent], config: { limits: { runsPerMinute: LIMIT } } });
  });
  after(async function () {
    await stack?.close();
  });

  /** A new organization with a one-step definition; its admin client. */
  async function organizationWithDefinition(): Promise<{ client: Client; slug: string }> {
    const { organizationId, client } = await otherOrganization(stack);
    const slug = uniqueSlug('limited');
    const yaml = `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n  - id: a\n    agent: test-sleep\n    with: { label: "${slug}", delayMs: 1 }\n`;
    const definition = parseDefinition(yaml, { file: 'test.yaml', agents: new Map([[sleepAgent.name, sleepAgent.type]]) });
    await syncDefinitions(stack.deps.database.db, organizationId, [{ definition, source: yaml }]);
    return { client, slug };
  }

  it('answers 429 RATE_LIMITED with Retry-After past the limit, and leaves another organization alone', async function () {
    const limited = await organizationWithDefinition();
    const other = await organizationWithDefinition();
    const startedAt = Date.now();
    const results = await burst([limited.client], limited.slug, 2000);
    const elapsedMs = Date.now() - startedAt;

    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 429);
    const odd = results.find((r) => r.status !== 202 && r.status !== 429);
    expect(accepted.length + refused.length, `unexpected statuses ${JSON.stringify(odd?.body)}: ${[...new Set(results.map((r) => r.status))].join(',')}`).to.equal(2000);
    // One window unless the burst outlasted it (then at most one more window's worth).
    expect(accepted.length).to.be.at.most(elapsedMs < 60_000 ? LIMIT : 2 * LIMIT);
    expect(accepted.length).to.be.at.least(LIMIT);
    for (const r of results) {
      expect(r.headers.get('ratelimit-limit')).to.equal(String(LIMIT));
      expect(r.headers.get('ratelimit-policy')).to.equal(`${LIMIT};w=60`);
      expect(Number(r.headers.get('ratelimit-reset'))).to.be.within(1, 60);
      expect(Number(r.headers.get('ratelimit-remaining'))).to.be.within(0, LIMIT - 1);
    }
    for (const r of refused) {
      expect(r.body.error?.code).to.equal('RATE_LIMITED');
      const retryAfter = r.headers.get('retry-after') ?? '';
      expect(retryAfter).to.match(/^\d+$/);
      expect(Number(retryAfter)).to.be.within(1, 60);
      expect(r.headers.get('ratelimit-remaining')).to.equal('0');
    }

    // Another organization has its own bucket.
    const theirs = await startRun(other.client, other.slug);
    expect(theirs.status, JSON.stringify(theirs.body)).to.equal(202);
    expect(theirs.headers.get('ratelimit-remaining')).to.equal(String(LIMIT - 1));

    // Dry runs are not counted (and not refused).
    const dry = await startRun(limited.client, limited.slug, '?dryRun=true');
    expect(dry.status).to.equal(200);
    expect(dry.headers.get('ratelimit-limit')).to.equal(null);
  });

  it('gives a key created with rateLimitRunsPerMinute its own bucket of that size', async function () {
    const limited = await organizationWithDefinition();
    const exhausted = await burst([limited.client], limited.slug, LIMIT + 5);
    expect(exhausted.filter((r) => r.status === 429).length).to.be.at.least(5);

    const created = await api<{ key: string; rateLimitRunsPerMinute: number }>(limited.client, 'POST', '/v1/api-keys', {
      name: 'batch importer',
      subject: 'service:importer',
      scopes: ['runs:write'],
      rateLimitRunsPerMinute: 3,
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    expect(created.body.rateLimitRunsPerMinute).to.equal(3);
    const own = await burst([{ baseUrl: limited.client.baseUrl, apiKey: created.body.key }], limited.slug, 5, 1);
    expect(own.map((r) => r.status)).to.deep.equal([202, 202, 202, 429, 429]);
    expect(own.map((r) => r.headers.get('ratelimit-limit'))).to.deep.equal(['3', '3', '3', '3', '3']);

    const invalid = await api<{ error: { field: string } }>(limited.client, 'POST', '/v1/api-keys', {
      name: 'bad',
      subject: 'service:bad',
      scopes: ['runs:write'],
      rateLimitRunsPerMinute: -1,
    });
    expect(invalid.status).to.equal(400);
    expect(invalid.body.error.field).to.equal('rateLimitRunsPerMinute');
  });

  it('refuses at once with UNAVAILABLE when Redis cannot be reached', async function () {
    const unreachable = createRedis('redis://127.0.0.1:1', 'producer');
    unreachable.on('error', () => undefined);
    try {
      const limiter = new RunRateLimiter(unreachable, stack.config.redis.prefix, LIMIT);
      const headers: Record<string, string> = {};
      const res = { set: (fields: Record<string, string>) => Object.assign(headers, fields) } as unknown as Pick<Response, 'set'>;
      const startedAt = Date.now();
      const err = await limiter.consume({ keyId: '00000000-0000-0000-0000-000000000000', organizationId: stack.organizationId, subject: 'service:t', scopes: [], roles: [], rateLimitRunsPerMinute: null }, res).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(UnavailableError);
      expect(Date.now() - startedAt).to.be.below(2000);
      expect(headers).to.deep.equal({});
    } finally {
      unreachable.disconnect();
    }
  });

  describe('across two API processes', function () {
    const children: ChildProcess[] = [];
    after(async function () {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      await Promise.all(children.map((c) => exited(c)));
    });

    it('shares one bucket per organization between both', async function () {
      const shared = 25;
      const { env } = await testEnvironment();
      const clients: Client[] = [];
      const limited = await organizationWithDefinition();
      for (let i = 0; i < 2; i += 1) {
        const port = await freePort();
        children.push(spawnProcess('web', { ...env, PORT: String(port), BATON_PUBLIC_URL: `http://127.0.0.1:${port}`, RATE_LIMIT_RUNS_PER_MINUTE: String(shared) }));
        clients.push({ baseUrl: `http://127.0.0.1:${port}`, apiKey: limited.client.apiKey });
      }
      for (const client of clients) {
        await waitFor(
          async () => {
            try {
              return (await fetch(`${client.baseUrl}/readyz`)).status === 200 ? true : undefined;
            } catch {
              return undefined;
            }
          },
          30_000,
          `web ${client.baseUrl} to be ready`,
        );
      }
      const startedAt = Date.now();
      const results = await burst(clients, limited.slug, 400, 40);
      const elapsedMs = Date.now() - startedAt;
      const accepted = results.filter((r) => r.status === 202);
      expect(results.every((r) => r.status === 202 || r.status === 429)).to.equal(true);
      expect(accepted.length).to.be.at.most(elapsedMs < 60_000 ? shared : 2 * shared);
      expect(accepted.length).to.be.at.least(shared);
      // Both processes took part in the same count.
      expect(results.filter((r) => r.client === 0 && r.status === 429).length).to.be.above(0);
      expect(results.filter((r) => r.client === 1 && r.status === 429).length).to.be.above(0);
    });
  });
});
