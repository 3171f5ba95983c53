/**
 * Secrets (issue 7 item 6): an API-created secret used as `${{ secrets.NAME }}` and a `writeOnly`
 * run-input field reach the step that uses them, and appear nowhere else — not in events, the run
 * view, the manifest, the SSE stream, webhook bodies, BullMQ failure reasons or any log line.
 */
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { Queue } from 'bullmq';
import { createLogger } from '../lib/index.js';
import { stepJobId } from '../queues/index.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('secrets and write-only input are redacted everywhere but where they are used', function () {
  this.timeout(60_000);
  let stack: Stack;
  let receiver: Receiver;
  const logLines: string[] = [];
  const token = `tok_${Math.random().toString(36).slice(2)}_SECRET_VALUE`;
  const password = `pw-${Math.random().toString(36).slice(2)}-hunter2`;

  before(async function () {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString('utf8'));
        done();
      },
    });
    stack = await startStack({ logger: createLogger({ level: 'debug', service: 'test', destination: sink }) });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  it('passes the real values to the step and "[redacted]" everywhere else', async function () {
    const put = await api(stack, 'POST', '/v1/secrets', { name: 'PARTNER_TOKEN', value: token });
    expect(put.status, JSON.stringify(put.body)).to.equal(201);
    expect(JSON.stringify(put.body)).not.to.contain(token);
    const listed = await api<{ items: { name: string }[] }>(stack, 'GET', '/v1/secrets');
    expect(listed.body.items.map((i) => i.name)).to.include('PARTNER_TOKEN');
    expect(JSON.stringify(listed.body)).not.to.contain(token);

    const slug = uniqueSlug('secret');
    await storeDefinition(
      stack,
      `slug: ${slug}
version: 1
name: ${slug}
input:
  type: object
  required: [url, password]
  properties:
    url: { type: string }
    password: { type: string, writeOnly: true }
steps:
  - id: call
    type: http
    with:
      method: POST
      url: \${{ input.url & '/partner' }}
      headers: { Authorization: "Bearer \${{ secrets.PARTNER_TOKEN }}" }
      body:
        password: \${{ input.password }}
        echo: "token=\${{ secrets.PARTNER_TOKEN }}"
  - id: leak
    type: function
    needs: [call]
    code: "function main(i) { throw new Error('cannot use ' + i.password + ' with ' + i.token) }"
    with:
      password: \${{ input.password }}
      token: \${{ secrets.PARTNER_TOKEN }}
`,
    );
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', {
      definition: slug,
      input: { url: receiver.url, password },
      webhookUrl: `${receiver.url}/webhooks`,
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    const runId = res.body.id;
    const run = await waitForRun(stack, runId);
    expect(run.status).to.equal('failed');

    // The step that uses them got the real values.
    const call = receiver.requests.find((r) => r.path === '/partner');
    expect(call?.headers.authorization).to.equal(`Bearer ${token}`);
    expect(call?.json).to.deep.equal({ password, echo: `token=${token}` });

    // Webhooks go out in sequence order after the commits: wait for the last one.
    await waitFor(async () => (receiver.webhooks.some((w) => w.type === 'run.failed' && w.data.runId === runId) ? true : undefined), 15_000, 'run.failed webhook');
    // Every surface: run view, events, manifest, SSE, webhook bodies, BullMQ, logs.
    const surfaces: Record<string, string> = {
      view: JSON.stringify((await api(stack, 'GET', `/v1/runs/${runId}`)).body),
      events: JSON.stringify((await api(stack, 'GET', `/v1/runs/${runId}/events`)).body),
      manifest: JSON.stringify((await api(stack, 'GET', `/v1/runs/${runId}/manifest`)).body),
      sse: await (await fetch(`${stack.baseUrl}/v1/runs/${runId}/stream`, { headers: { authorization: `Bearer ${stack.apiKey}` } })).text(),
      webhooks: receiver.requests.filter((r) => r.path === '/webhooks').map((r) => r.body).join('\n'),
      logs: logLines.join(''),
    };
    const queue = new Queue('agent-function', { connection: stack.deps.queues.connection, prefix: stack.config.redis.prefix });
    try {
      const job = await queue.getJob(stepJobId(runId, 'leak', 1));
      surfaces['bullmq'] = JSON.stringify({ data: job?.data as unknown, failedReason: job?.failedReason, stacktrace: job?.stacktrace });
    } finally {
      await queue.close();
    }
    for (const [name, text] of Object.entries(surfaces)) {
      expect(text.length, `${name} is not empty`).to.be.greaterThan(0);
      expect(text, `${name} leaks the secret`).not.to.contain(token);
      expect(text, `${name} leaks the write-only input`).not.to.contain(password);
    }
    expect(surfaces['view']).to.contain('[redacted]');
    expect(surfaces['webhooks']).to.contain('run.failed');
    const leak = run.steps.find((s) => s.id === 'leak')?.error as { message: string };
    expect(leak.message).to.contain('cannot use [redacted] with [redacted]');
  });
});
