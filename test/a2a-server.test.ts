/**
 * Baton's A2A v1.0 server, driven by the official client (`@a2a-js/sdk/client`) over real HTTP:
 * kpi-tracking as an agent — SendMessage → TASK_STATE_INPUT_REQUIRED (the review checkpoint) →
 * a continue message on the same task → TASK_STATE_COMPLETED with the KPIs as an artifact.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { Role, TaskState, type Message, type Part, type Task } from '@a2a-js/sdk';
import { ClientFactory, type Client } from '@a2a-js/sdk/client';
import { startStack, api, waitFor, type Stack } from './support/stack.js';

const INPUT = { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' };

function dataPart(value: unknown): Part {
  return { content: { $case: 'data', value }, metadata: undefined, filename: '', mediaType: 'application/json' };
}

function message(parts: Part[], ids: { taskId?: string; contextId?: string } = {}): Message {
  return { messageId: crypto.randomUUID(), contextId: ids.contextId ?? '', taskId: ids.taskId ?? '', role: Role.ROLE_USER, parts, metadata: undefined, extensions: [], referenceTaskIds: [] };
}

function asTask(result: Message | Task): Task {
  expect(result, 'a task, not a message').to.have.property('status');
  return result as Task;
}

describe('A2A server (official client)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let client: Client;
  const auth = () => ({ serviceParameters: { authorization: `Bearer ${stack.apiKey}` } });

  before(async function () {
    stack = await startStack();
    client = await new ClientFactory().createFromUrl(`${stack.baseUrl}/a2a/kpi-tracking/`);
  });
  after(async function () {
    await stack?.close();
  });

  it('serves an agent card with supportedInterfaces for protocol 1.0, skills and the bearer scheme', async function () {
    const response = await fetch(`${stack.baseUrl}/a2a/kpi-tracking/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } });
    expect(response.status).to.equal(200);
    const card = (await response.json()) as Record<string, unknown>;
    expect(card.name).to.equal('KPI tracking');
    expect(card.version).to.equal('1');
    expect(card.supportedInterfaces).to.deep.include({ url: `${stack.baseUrl}/a2a/kpi-tracking`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' });
    expect(card.supportedInterfaces).to.deep.include({ url: `${stack.baseUrl}/a2a/kpi-tracking/rest`, protocolBinding: 'HTTP+JSON', tenant: '', protocolVersion: '1.0' });
    expect(card.capabilities).to.include({ streaming: true });
    expect((card.skills as Array<{ id: string }>)[0]?.id).to.equal('kpi-tracking');
    expect(card.securitySchemes).to.have.key('bearer');
    expect(client.protocolVersion).to.equal('1.0');
  });

  it('refuses calls without the API key', async function () {
    let error: unknown;
    try {
      await client.sendMessage({ tenant: '', message: message([dataPart(INPUT)]), configuration: undefined, metadata: undefined });
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.match(/API key/);
  });

  it('runs kpi-tracking: input-required at the review, completed with the KPIs after a continue message', async function () {
    const first = asTask(await client.sendMessage({ tenant: '', message: message([dataPart(INPUT)]), configuration: undefined, metadata: undefined }, auth()));
    expect(TaskState[first.status?.state ?? 0]).to.equal('TASK_STATE_INPUT_REQUIRED');
    const prompt = first.status?.message?.parts.find((p) => p.content?.$case === 'text');
    expect(prompt?.content?.value).to.equal('Review the KPIs for AAPL, MSFT (2005-01-01 to 2009-12-31) before the summary is written.');
    const shown = first.status?.message?.parts.find((p) => p.content?.$case === 'data')?.content?.value as { show: Record<string, unknown>; decisions: string[] };
    expect(shown.show).to.have.keys(['AAPL', 'MSFT']);
    expect(shown.decisions).to.include('continue');

    // The task is the run, and the run is parked at its checkpoint.
    const run = await api<{ status: string; approvals: Array<{ status: string }> }>(stack, 'GET', `/v1/runs/${first.id}`);
    expect(run.body.approvals.map((a) => a.status)).to.deep.equal(['pending']);

    const got = await client.getTask({ tenant: '', id: first.id, historyLength: undefined }, auth());
    expect(got.status?.state).to.equal(TaskState.TASK_STATE_INPUT_REQUIRED);
    expect(got.contextId).to.equal(first.contextId);

    const done = asTask(
      await client.sendMessage(
        { tenant: '', message: message([dataPart({ decision: 'continue', comment: 'looks right' })], { taskId: first.id, contextId: first.contextId }), configuration: undefined, metadata: undefined },
        auth(),
      ),
    );
    expect(TaskState[done.status?.state ?? 0]).to.equal('TASK_STATE_COMPLETED');
    const kpis = done.artifacts.find((a) => a.name === 'kpis');
    const value = kpis?.parts[0]?.content?.value as Record<string, { totalReturnPct: number }>;
    expect(value).to.have.keys(['AAPL', 'MSFT']);
    expect(value.AAPL?.totalReturnPct).to.be.a('number');

    const after = await api<{ status: string; approvals: Array<{ decision: string; comment: string; decidedBy: string }> }>(stack, 'GET', `/v1/runs/${first.id}`);
    expect(after.body.status).to.equal('completed');
    expect(after.body.approvals[0]).to.include({ decision: 'continue', comment: 'looks right', decidedBy: 'service:baton-api-key' });

    const listed = await client.listTasks({ tenant: '', contextId: first.contextId, status: TaskState.TASK_STATE_UNSPECIFIED, pageSize: 10, pageToken: '', historyLength: undefined, statusTimestampAfter: undefined, includeArtifacts: true }, auth());
    expect(listed.tasks.map((t) => t.id)).to.deep.equal([first.id]);
    expect(listed.tasks[0]?.status?.state).to.equal(TaskState.TASK_STATE_COMPLETED);

    // A second answer to the finished task is refused as an A2A error.
    let error: unknown;
    try {
      await client.sendMessage({ tenant: '', message: message([dataPart({ decision: 'continue' })], { taskId: first.id, contextId: first.contextId }), configuration: undefined, metadata: undefined }, auth());
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.match(/terminal state/);
  });

  it('sends push notifications (kept in Postgres) through the outbound policy', async function () {
    const received: Array<{ token: string | undefined; body: { statusUpdate?: { status?: { state?: string } } } }> = [];
    const receiver: Server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString('utf8')));
      req.on('end', () => {
        received.push({ token: req.headers['x-a2a-notification-token'] as string | undefined, body: JSON.parse(text) as never });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`;
    try {
      const first = asTask(
        await client.sendMessage(
          {
            tenant: '',
            message: message([dataPart(INPUT)]),
            configuration: { acceptedOutputModes: [], returnImmediately: false, historyLength: undefined, taskPushNotificationConfig: { tenant: '', id: '', taskId: '', url, token: 'secret-token', authentication: undefined } },
            metadata: undefined,
          },
          auth(),
        ),
      );
      await waitFor(async () => (received.some((r) => r.body.statusUpdate?.status?.state === 'TASK_STATE_INPUT_REQUIRED') ? true : undefined), 10_000, 'the input-required push');
      expect(received.every((r) => r.token === 'secret-token')).to.equal(true);
      const listed = await client.listTaskPushNotificationConfig({ tenant: '', taskId: first.id, pageSize: 10, pageToken: '' }, auth());
      expect(listed.configs.map((c) => c.url)).to.deep.equal([url]);
      await client.sendMessage({ tenant: '', message: message([dataPart({ decision: 'continue' })], { taskId: first.id, contextId: first.contextId }), configuration: undefined, metadata: undefined }, auth());
      await waitFor(async () => (received.some((r) => r.body.statusUpdate?.status?.state === 'TASK_STATE_COMPLETED') ? true : undefined), 10_000, 'the completed push');
    } finally {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('answers a v0.3 client (message/send without A2A-Version) through the SDK compatibility layer', async function () {
    const response = await fetch(`${stack.baseUrl}/a2a/kpi-tracking`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.apiKey}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'message/send',
        params: { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'data', data: INPUT }] } },
      }),
    });
    const body = (await response.json()) as { result?: { kind: string; id: string; status: { state: string } }; error?: unknown };
    expect(body.error, JSON.stringify(body.error)).to.equal(undefined);
    expect(body.result?.kind).to.equal('task');
    expect(body.result?.status.state).to.equal('input-required');
    const run = await api<{ status: string }>(stack, 'GET', `/v1/runs/${body.result?.id}`);
    expect(run.body.status).to.equal('running');
  });

  it('streams a run as status updates and cancels it with CancelTask', async function () {
    const events: string[] = [];
    let taskId = '';
    for await (const event of client.sendMessageStream({ tenant: '', message: message([dataPart(INPUT)]), configuration: undefined, metadata: undefined }, auth())) {
      const payload = event.payload;
      if (payload?.$case === 'task') taskId = payload.value.id;
      if (payload?.$case === 'statusUpdate') events.push(TaskState[payload.value.status?.state ?? 0] ?? '');
    }
    expect(events).to.include('TASK_STATE_WORKING');
    expect(events.at(-1)).to.equal('TASK_STATE_INPUT_REQUIRED');
    const cancelled = await client.cancelTask({ tenant: '', id: taskId, metadata: undefined }, auth());
    expect(cancelled.status?.state).to.equal(TaskState.TASK_STATE_CANCELED);
    const run = await api<{ status: string }>(stack, 'GET', `/v1/runs/${taskId}`);
    expect(run.body.status).to.equal('cancelled');
  });
});
