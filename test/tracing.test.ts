/**
 * OpenTelemetry from outside: `web` and two `worker` processes (the Procfile's own lines, one
 * serving `api,context`, the other `function`) export OTLP/HTTP to a local receiver. A run started
 * with a `traceparent` arrives as one trace: the `POST /v1/runs` server span (child of the
 * caller's span) is the parent of every step-attempt span, in whichever worker ran it; outgoing
 * HTTP carries `traceparent`; the model call is a gen_ai span; a child run joins the trace.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { exited, spawnProcess } from '../scripts/procfile.js';
import { testEnvironment } from './support/environment.js';
import { freePort } from './support/private-services.js';
import { startFakeOpenAI, type FakeServer } from './support/fakes.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('a run traced across web and two workers (OTLP/HTTP)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let otlp: OtlpReceiver;
  let receiver: Receiver;
  let llm: FakeServer;
  const children: ChildProcess[] = [];

  before(async function () {
    stack = await startStack({ workers: false });
    otlp = await startOtlpReceiver();
    receiver = await startReceiver(stack.config.auth.webhookSecret);
    llm = await startFakeOpenAI({ apiKey: 'sk-test-tracing', chat: () => 'Two calls went well.' });
  });
  after(async function () {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => exited(c)));
    await Promise.all([otlp?.close(), receiver?.close(), llm?.close()]);
    await stack?.close();
  });

  it('arrives as one trace whose spans come from web and both workers', async function () {
    const { env } = await testEnvironment();
    const port = await freePort();
    const common = {
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      LLM_BASE_URL: llm.url,
      LLM_API_KEY: 'sk-test-tracing',
      LLM_MODEL: 'gpt-test',
    };
    const web = spawnProcess('web', { ...common, PORT: String(port), BATON_PUBLIC_URL: `http://127.0.0.1:${port}` });
    const apiWorker = spawnProcess('worker', common, { extraArgs: ['--agents', 'api,context,orchestrator'] });
    const functionWorker = spawnProcess('worker', common, { extraArgs: ['--agents', 'function'] });
    children.push(web, apiWorker, functionWorker);
    const child = { baseUrl: `http://127.0.0.1:${port}`, apiKey: stack.apiKey };
    await waitFor(
      async () => {
        try {
          return (await fetch(`${child.baseUrl}/readyz`)).status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
      'web to be ready',
    );

    const childSlug = uniqueSlug('traced-child');
    await storeDefinition(
      stack,
      `
slug: ${childSlug}
version: 1
name: Traced child
input: { type: object }
steps:
  - id: inner
    type: function
    code: "function main() { return { inner: true } }"
`,
    );
    const slug = uniqueSlug('traced');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: Traced
input: { type: object, properties: { url: { type: string } } }
steps:
  - id: call
    type: http
    with:
      method: GET
      url: \${{ input.url & '/effect' }}
  - id: shape
    type: function
    needs: [call]
    code: "async function main(input, ctx) { const r = await ctx.require('axios').get(input.url + '/from-function'); return { status: r.status } }"
    with:
      url: \${{ input.url }}
  - id: summary
    agent: summarizer
    needs: [shape]
    with:
      text: "The call answered \${{ steps.shape.output.status }}."
  - id: child
    type: orchestrator
    needs: [shape]
    run: { slug: ${childSlug} }
`,
    );
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const { status, body } = await api<{ id: string }>(child, 'POST', '/v1/runs', { definition: slug, input: { url: receiver.url } }, { traceparent: `00-${callerTrace}-${callerSpan}-01` });
    expect(status).to.equal(202);
    const run = await waitForRun(child, body.id, 60_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');

    const stepSpan = (stepId: string) => otlp.spans.find((s) => s.traceId === callerTrace && s.attributes['baton.step_id'] === stepId);
    await waitFor(async () => (['call', 'shape', 'summary', 'inner'].every((id) => stepSpan(id)) && otlp.spans.some((s) => s.name.startsWith('chat ')) ? true : undefined), 20_000, 'the step spans to be exported');
    const trace = otlp.spans.filter((s) => s.traceId === callerTrace);

    // web: the POST /v1/runs server span continues the caller's trace.
    const post = trace.find((s) => s.name === 'POST /v1/runs');
    expect(post, JSON.stringify(trace.map((s) => s.name))).to.not.equal(undefined);
    const root = post as ReceivedSpan;
    expect(root.parentSpanId).to.equal(callerSpan);
    expect(root.kind).to.equal(2);
    expect(root.resource['service.name']).to.equal('baton-web');
    expect(root.attributes['http.route']).to.equal('/v1/runs');
    expect(root.attributes['http.response.status_code']).to.equal(202);

    // Every step attempt is a child of it, with the run, step and attempt.
    const steps = ['call', 'shape', 'summary'].map((id) => stepSpan(id) as ReceivedSpan);
    for (const s of steps) {
      expect(s.parentSpanId, s.name).to.equal(root.spanId);
      expect(s.attributes['baton.run_id']).to.equal(body.id);
      expect(s.attributes['baton.attempt']).to.equal(1);
      expect(s.resource['service.name']).to.equal('baton-worker');
    }
    const [call, shape, summary] = steps as [ReceivedSpan, ReceivedSpan, ReceivedSpan];
    // Two different worker processes ran them.
    expect(call.resource['service.instance.id']).to.equal(summary.resource['service.instance.id']);
    expect(shape.resource['service.instance.id']).to.not.equal(call.resource['service.instance.id']);
    expect(new Set(trace.map((s) => s.resource['service.instance.id'])).size).to.equal(3);

    // Outgoing HTTP of the http step and of ctx.require('axios') carries traceparent, from a client span under the step.
    const effect = receiver.requests.find((r) => r.path === '/effect');
    const fromFunction = receiver.requests.find((r) => r.path === '/from-function');
    for (const [request, step] of [[effect, call], [fromFunction, shape]] as const) {
      const header = String(request?.headers.traceparent ?? '');
      expect(header, request?.path).to.match(new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-01$`));
      const client = trace.find((s) => s.spanId === header.split('-')[2]);
      expect(client?.kind, request?.path).to.equal(3);
      expect(client?.parentSpanId, request?.path).to.equal(step.spanId);
    }

    // The model call: a gen_ai span under the summary step, and traceparent to the LLM endpoint.
    const chat = trace.find((s) => s.name.startsWith('chat '));
    expect(chat?.parentSpanId).to.equal(summary.spanId);
    expect(chat?.attributes).to.include({ 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-test' });
    expect(chat?.attributes['gen_ai.usage.input_tokens']).to.be.a('number').greaterThan(0);
    expect(chat?.attributes['gen_ai.usage.output_tokens']).to.be.a('number').greaterThan(0);
    expect(String(llm.requests.at(-1)?.headers.traceparent ?? '')).to.contain(callerTrace);

    // A sub-orchestration's child run joins the same trace: its step hangs under the same request span.
    const inner = stepSpan('inner') as ReceivedSpan;
    expect(inner.parentSpanId).to.equal(root.spanId);
    expect(inner.attributes['baton.run_id']).to.not.equal(body.id);
  });
});
