/**
 * Function steps end to end (issue 7 item 2): `main(input, ctx)` in the worker-thread runtime,
 * through the real API and in-process workers, against a real local receiver.
 */
import { expect } from 'chai';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('function steps in the thread runtime', function () {
  this.timeout(60_000);
  let stack: Stack;
  let receiver: Receiver;

  before(async function () {
    stack = await startStack();
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  async function start(steps: string, input: unknown = {}): Promise<string> {
    const slug = uniqueSlug('fn');
    await storeDefinition(stack, `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n${steps}`);
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.id;
  }

  it("reaches a receiver through ctx.require('axios') with the step's idempotency key", async function () {
    const runId = await start(
      `  - id: call
    type: function
    code: |
      async function main(input, ctx) {
        const axios = ctx.require('axios');
        const res = await axios.post(input.url + '/effect', { hello: 'world' }, { headers: { 'Idempotency-Key': ctx.idempotencyKey } });
        return { status: res.status, data: res.data, key: ctx.idempotencyKey, run: ctx.run.id };
      }
    with:
      url: \${{ input.url }}
`,
      { url: receiver.url },
    );
    const run = await waitForRun(stack, runId);
    expect(run.status, JSON.stringify(run)).to.equal('completed');
    const call = receiver.requests.find((r) => r.path === '/effect' && r.headers['idempotency-key'] === `${runId}.call.1`);
    expect(call, 'the receiver saw the call with its idempotency key').to.not.equal(undefined);
    expect(call?.json).to.deep.equal({ hello: 'world' });
    const output = run.steps.find((s) => s.id === 'call')?.output as { status: number; key: string; run: string };
    expect(output).to.include({ status: 200, key: `${runId}.call.1`, run: runId });
  });

  it("fails ctx.require('fs') with an error naming the allowed modules", async function () {
    const runId = await start(`  - id: fs
    type: function
    code: "function main(input, ctx) { return ctx.require('fs').readFileSync('/etc/passwd', 'utf8') }"
`);
    const run = await waitForRun(stack, runId);
    expect(run.status).to.equal('failed');
    const error = run.steps.find((s) => s.id === 'fs')?.error as { message: string };
    expect(error.message).to.match(/fs/).and.to.match(/axios/).and.to.match(/crypto/).and.to.match(/url/);
  });

  it('keeps other runs moving while a function spins, and stops a spinning function at its timeout', async function () {
    const spinning = await start(`  - id: spin
    type: function
    limits: { timeout: 10s }
    code: "function main() { while (true) {} }"
`);
    await waitFor(async () => ((await runEvents(stack, spinning)).some((e) => e.type === 'step.started') ? true : undefined), 10_000, 'spin to start');
    const startedAt = Date.now();
    const trivial = await start(`  - id: quick
    type: function
    code: "function main() { return { ok: true } }"
`);
    const quick = await waitForRun(stack, trivial, 10_000);
    const quickMs = Date.now() - startedAt;
    expect(quick.status).to.equal('completed');
    expect(quickMs, 'a trivial run completes while another function spins').to.be.below(2000);

    const bounded = await start(`  - id: spin
    type: function
    timeout: 2s
    code: "function main() { while (true) {} }"
`);
    const boundedStart = Date.now();
    const stopped = await waitForRun(stack, bounded, 10_000);
    expect(Date.now() - boundedStart, 'a 2 s timeout stops a spinning function within 3 s').to.be.below(3000);
    expect(stopped.status).to.equal('failed');
    expect((stopped.steps[0]?.error as { code: string }).code).to.equal('TIMED_OUT');
    const spun = await waitForRun(stack, spinning, 20_000);
    expect((spun.steps[0]?.error as { code: string }).code).to.equal('TIMED_OUT');
  });

  it('fails a step whose output is larger than STEP_OUTPUT_MAX_BYTES with OUTPUT_TOO_LARGE', async function () {
    const runId = await start(`  - id: big
    type: function
    code: "function main() { return { blob: 'x'.repeat(2 * 1024 * 1024) } }"
`);
    const run = await waitForRun(stack, runId);
    expect(run.status).to.equal('failed');
    expect((run.steps[0]?.error as { code: string }).code).to.equal('OUTPUT_TOO_LARGE');
    expect(run.steps[0]?.output ?? null).to.equal(null);
  });

  it('reports progress, assets and deliverables from ctx, listed per step and downloadable', async function () {
    const runId = await start(`  - id: art
    type: function
    code: |
      async function main(input, ctx) {
        await ctx.progress(0.5, 'half way');
        const bytes = Buffer.from('iVBORw0KGgo=', 'base64');
        const asset = await ctx.assets.saveBuffer(bytes, { name: 'a.png', mimeType: 'image/png' });
        const d = await ctx.deliverables.create({ title: 'Art', kind: 'image-set', content: { n: 1 }, assetIds: [asset.id] });
        return { asset, deliverable: d.id };
      }
`);
    const run = await waitForRun(stack, runId);
    expect(run.status, JSON.stringify(run.steps)).to.equal('completed');
    const output = run.steps[0]?.output as { asset: { id: string; bytes: number; sha256: string }; deliverable: string };
    expect(output.asset.bytes).to.equal(8);
    const progress = (await runEvents(stack, runId)).find((e) => e.type === 'step.progress');
    expect(progress?.data).to.include({ fraction: 0.5, message: 'half way' });
    const step = run.steps[0] as unknown as { assets: { id: string }[]; deliverables: { id: string }[] };
    expect(step.assets.map((a) => a.id)).to.deep.equal([output.asset.id]);
    expect(step.deliverables.map((d) => d.id)).to.deep.equal([output.deliverable]);
    const res = await fetch(`${stack.baseUrl}/v1/runs/${runId}/assets/${output.asset.id}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('image/png');
    expect(Buffer.from(await res.arrayBuffer()).toString('base64')).to.equal('iVBORw0KGgo=');
  });
});
