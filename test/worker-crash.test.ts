/**
 * Durability: a worker process (started from the Procfile's own `worker` line) is killed with
 * SIGKILL in the middle of a step. Another worker recovers the job after its lock expires; the
 * run completes with that step recorded completed exactly once.
 */
import type { ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { asc, eq } from 'drizzle-orm';
import { stepAttempts } from '../db/index.js';
import { exited, spawnProcess } from '../scripts/procfile.js';
import { testEnvironment } from './support/environment.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('a worker killed with SIGKILL mid-step', function () {
  this.timeout(90_000);
  let stack: Stack;
  let receiver: Receiver;
  const children: ChildProcess[] = [];

  before(async function () {
    // The API in-process; every worker is a real child process.
    stack = await startStack({ workers: false });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => exited(c)));
    await receiver?.close();
    await stack?.close();
  });

  it('loses no run and records the step completed once', async function () {
    const { env } = await testEnvironment();
    const slug = uniqueSlug('crash');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: Crash
input: { type: object, properties: { url: { type: string } } }
steps:
  - id: call
    agent: marketing-swarm
    with:
      url: \${{ input.url }}
      payload: { hello: world }
  - id: after
    type: function
    needs: [call]
    code: "function main(input) { return { status: input.status } }"
    with:
      status: \${{ steps.call.output.status }}
`,
    );
    // The first call hangs long enough for us to kill the worker that made it.
    receiver.delays.set('/effect', 60_000);
    const first = spawnProcess('worker', env);
    children.push(first);
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: { url: `${receiver.url}/effect` } });
    const runId = body.id;

    await waitFor(async () => (receiver.requests.some((r) => r.path === '/effect') ? true : undefined), 20_000, 'the first call');
    first.kill('SIGKILL');
    expect((await exited(first)).signal).to.equal('SIGKILL');

    children.push(spawnProcess('worker', env));
    const run = await waitForRun(stack, runId, 60_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    expect(run.steps.find((s) => s.id === 'after')?.output).to.deep.equal({ status: 200 });

    const attempts = await stack.deps.database.db
      .select()
      .from(stepAttempts)
      .where(eq(stepAttempts.runId, runId))
      .orderBy(asc(stepAttempts.stepId), asc(stepAttempts.attempt));
    const call = attempts.filter((a) => a.stepId === 'call');
    expect(call.map((a) => a.status)).to.deep.equal(['lost', 'completed']);
    const events = await runEvents(stack, runId);
    expect(events.filter((e) => e.type === 'step.completed' && e.stepId === 'call')).to.have.length(1);
    expect(events.filter((e) => e.type === 'run.completed')).to.have.length(1);

    // The effect was attempted twice, both times under the same idempotency key.
    const effects = receiver.requests.filter((r) => r.path === '/effect');
    expect(effects).to.have.length(2);
    expect(effects[0]?.headers['idempotency-key']).to.equal(`${runId}.call.1`);
    expect(effects[1]?.headers['idempotency-key']).to.equal(`${runId}.call.1`);
  });
});
