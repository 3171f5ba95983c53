/**
 * `type: a2a` steps against real A2A servers: Baton's own (`/a2a/kpi-tracking`) and a minimal
 * agent built by this test on the official SDK. The remote input-required state opens a Baton
 * approval on the calling run; its decision is forwarded as the follow-up message.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { expect } from 'chai';
import { A2A_PROTOCOL_VERSION, TaskState, type AgentCard, type Message } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor, type ExecutionEventBus, type RequestContext } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { a2aMessage, dataPart, partsData, textPart } from '../lib/index.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';

interface ApprovalView {
  id: string;
  status: string;
  prompt: string;
  show: unknown;
  stepId: string;
  decision: string | null;
}

/** A remote agent: asks to approve a plan, then completes with what it was told (or cancels on abort). */
class PlanAgent implements AgentExecutor {
  readonly received: unknown[] = [];
  async execute(context: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const ids = { taskId: context.taskId, contextId: context.contextId };
    const data = partsData(context.userMessage.parts)[0];
    this.received.push(data);
    const status = (state: TaskState, message?: Message) => AgentEvent.statusUpdate({ ...ids, status: { state, message, timestamp: new Date().toISOString() }, metadata: undefined });
    if (!context.task) {
      bus.publish(AgentEvent.task({ id: ids.taskId, contextId: ids.contextId, status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() }, artifacts: [], history: [context.userMessage], metadata: undefined }));
      bus.publish(status(TaskState.TASK_STATE_INPUT_REQUIRED, a2aMessage('agent', [textPart('Approve the plan for ACME?'), dataPart({ plan: ['draft', 'send'] })], ids)));
      return;
    }
    const reply = data as { decision: string; input?: unknown; comment?: string };
    if (reply.decision !== 'continue') {
      bus.publish(status(TaskState.TASK_STATE_CANCELED, a2aMessage('agent', [textPart(`stopped: ${reply.decision}`)], ids)));
      return;
    }
    bus.publish(AgentEvent.artifactUpdate({ ...ids, artifact: { artifactId: 'result', name: 'result', description: '', parts: [dataPart({ done: true, input: reply.input ?? null, comment: reply.comment ?? null })], metadata: undefined, extensions: [] }, append: false, lastChunk: true, metadata: undefined }));
    bus.publish(status(TaskState.TASK_STATE_COMPLETED));
  }
  async cancelTask(): Promise<void> {}
}

async function startPlanAgent(agent: PlanAgent): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const card: AgentCard = {
    name: 'Plan agent',
    description: 'asks before it acts',
    supportedInterfaces: [{ url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_PROTOCOL_VERSION }],
    provider: undefined,
    version: '1.0.0',
    capabilities: { streaming: false, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['application/json'],
    defaultOutputModes: ['application/json'],
    skills: [],
    signatures: [],
  };
  const requestHandler = new DefaultRequestHandler(card, new InMemoryTaskStore(), agent);
  app.use('/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: requestHandler }));
  app.use(jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication }));
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const DEFINITION = (slug: string, withBlock: string) => `
slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: remote
    type: a2a
    with:
${withBlock}
  - id: after
    type: function
    needs: [remote]
    code: "function main(i) { return { state: i.state, data: i.data } }"
    with: \${{ steps.remote.output }}
`;

async function pendingApproval(stack: Stack, runId: string): Promise<ApprovalView> {
  return waitFor(
    async () => (await api<{ approvals: ApprovalView[] }>(stack, 'GET', `/v1/runs/${runId}`)).body.approvals.find((a) => a.status === 'pending'),
    30_000,
    `a pending approval on run ${runId}`,
  );
}

describe('type: a2a steps', function () {
  this.timeout(90_000);
  let stack: Stack;
  let remote: { url: string; close(): Promise<void> };
  const planAgent = new PlanAgent();

  before(async function () {
    stack = await startStack();
    remote = await startPlanAgent(planAgent);
    expect((await api(stack, 'POST', '/v1/secrets', { name: 'SELF_KEY', value: stack.apiKey })).status).to.equal(201);
    await storeDefinition(stack, DEFINITION('a2a-plan', `      agentUrl: \${{ input.url }}\n      message: { customer: ACME }`));
    await storeDefinition(
      stack,
      DEFINITION(
        'a2a-self',
        `      agentCardUrl: \${{ input.card }}\n      message: { symbols: [AAPL], from: "2005-01-01", to: "2006-12-31" }\n      auth: \${{ secrets.SELF_KEY }}`,
      ),
    );
  });
  after(async function () {
    await remote?.close();
    await stack?.close();
  });

  it('turns the remote input-required into a Baton approval and forwards the decision (minimal SDK agent)', async function () {
    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: 'a2a-plan', input: { url: remote.url } });
    expect(started.status).to.equal(202);
    const approval = await pendingApproval(stack, started.body.id);
    expect(approval).to.include({ stepId: 'remote', prompt: 'Approve the plan for ACME?' });
    expect(approval.show).to.deep.equal({ plan: ['draft', 'send'] });

    const decided = await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue', input: { budget: 5 }, comment: 'go' });
    expect(decided.status).to.equal(200);
    const run = await waitForRun(stack, started.body.id, 30_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    expect(run.steps.find((s) => s.id === 'after')?.output).to.deep.equal({ state: 'TASK_STATE_COMPLETED', data: { done: true, input: { budget: 5 }, comment: 'go' } });
    expect(planAgent.received).to.deep.equal([{ customer: 'ACME' }, { decision: 'continue', input: { budget: 5 }, comment: 'go' }]);
  });

  it('fails the step when the forwarded abort makes the remote cancel its task', async function () {
    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: 'a2a-plan', input: { url: remote.url } });
    const approval = await pendingApproval(stack, started.body.id);
    expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'abort', comment: 'no' })).status).to.equal(200);
    const run = await waitForRun(stack, started.body.id, 30_000);
    expect(run.status).to.equal('failed');
    const step = run.steps.find((s) => s.id === 'remote');
    expect(JSON.stringify(step?.error)).to.match(/TASK_STATE_CANCELED: stopped: abort/);
  });

  it("runs kpi-tracking through Baton's own A2A server: its checkpoint becomes this run's approval", async function () {
    const card = `${stack.baseUrl}/a2a/kpi-tracking/.well-known/agent-card.json`;
    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: 'a2a-self', input: { card } });
    expect(started.status).to.equal(202);
    const approval = await pendingApproval(stack, started.body.id);
    expect(approval.prompt).to.equal('Review the KPIs for AAPL (2005-01-01 to 2006-12-31) before the summary is written.');
    expect((approval.show as { show: Record<string, unknown> }).show).to.have.key('AAPL');
    // What is shown is the remote task's status data: the remote run's own pending approval.
    const remoteApproval = await api<{ status: string }>(stack, 'GET', `/v1/approvals/${(approval.show as { approvalId: string }).approvalId}`);
    expect(remoteApproval.body.status).to.equal('pending');

    expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' })).status).to.equal(200);
    const run = await waitForRun(stack, started.body.id, 40_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    const after = run.steps.find((s) => s.id === 'after')?.output as { state: string };
    expect(after.state).to.equal('TASK_STATE_COMPLETED');
    const remoteStep = run.steps.find((s) => s.id === 'remote')?.output as { taskId: string; artifacts: Array<{ name: string; data: Record<string, unknown> }> };
    expect(remoteStep.artifacts.find((a) => a.name === 'kpis')?.data).to.have.key('AAPL');
    // The task is the remote run: completed, its approval decided by the forwarded message.
    const remoteRun = await api<{ status: string; approvals: Array<{ decision: string; decidedBy: string }> }>(stack, 'GET', `/v1/runs/${remoteStep.taskId}`);
    expect(remoteRun.body.status).to.equal('completed');
    expect(remoteRun.body.approvals[0]).to.include({ decision: 'continue', decidedBy: 'service:baton-api-key' });
  });
});
