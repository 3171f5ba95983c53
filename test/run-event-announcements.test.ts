/**
 * Committed run events wake SSE streams through a Redis announcement made after the commit
 * (`Queues.announceRunEvents`), which replaced a Postgres NOTIFY per event (migration 0017).
 * Real Redis, real Postgres; the "other process" is a second `Queues` on its own connection.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { silentLogger } from '../lib/index.js';
import { Queues, createRedis } from '../queues/index.js';
import { RunEventHub } from '../services/api/event-hub.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('run event announcements', function () {
  this.timeout(60_000);
  let stack: Stack;
  const connections: Redis[] = [];
  const closers: Array<() => Promise<void>> = [];

  before(async function () {
    stack = await startStack();
  });
  after(async function () {
    for (const close of closers.reverse()) await close();
    for (const c of connections) c.disconnect();
    await stack.close();
  });

  /** A `Queues` on a connection of its own (another process, as far as Redis can tell). */
  function otherProcess(): Queues {
    const connection = createRedis(stack.config.redis.url, 'producer');
    connections.push(connection);
    const queues = new Queues(connection, stack.config.redis.prefix, silentLogger());
    closers.push(() => queues.close());
    return queues;
  }

  it('sends the runs announced in one turn of the event loop as one message, heard by every other process', async function () {
    const announcer = otherProcess();
    const listener = otherProcess();
    const heard: string[][] = [];
    closers.push(async () => {
      await Promise.resolve(unsubscribe());
    });
    const unsubscribe = listener.subscribeRunEvents((ids) => heard.push(ids));
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    // The subscription completes asynchronously: announce until it is heard.
    await waitFor(async () => {
      announcer.announceRunEvents(a);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return heard.length > 0 ? true : undefined;
    }, 10_000, 'the subscriber to hear a first announcement');
    heard.length = 0;
    announcer.announceRunEvents(b);
    announcer.announceRunEvents(c);
    announcer.announceRunEvents(b);
    // One publisher connection keeps its order on the channel: once the sentinel is heard, so was the batch.
    await new Promise((resolve) => setImmediate(resolve));
    announcer.announceRunEvents(a);
    await waitFor(async () => (heard.some((ids) => ids.includes(a)) ? true : undefined), 10_000, 'the sentinel announcement');
    expect(heard).to.deep.equal([[b, c], [a]]);
  });

  it('wakes the hub of another API process for every transition of a run, after its commit', async function () {
    const slug = uniqueSlug('announce');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: Announced
input: { type: object }
steps:
  - id: one
    type: function
    code: "function main() { return { n: 1 } }"
  - id: two
    type: function
    needs: [one]
    code: "function main() { return { n: 2 } }"
`,
    );
    const hub = new RunEventHub(stack.deps.database.sql, otherProcess(), silentLogger());
    await hub.start();
    closers.push(() => hub.stop());
    const woken = new Map<string, number>();
    const stop = hub.subscribeAll((runId) => woken.set(runId, (woken.get(runId) ?? 0) + 1));
    closers.push(async () => {
      await Promise.resolve(stop());
    });
    // Give the new subscriber connection time to subscribe: until it hears some run, start runs.
    let runId = '';
    await waitFor(async () => {
      const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      expect(res.status).to.equal(202);
      runId = res.body.id;
      await waitForRun(stack, runId);
      return woken.has(runId) ? true : undefined;
    }, 30_000, 'the hub to hear a run');
    // Start, two claims, two completions, the finish: several commits, each announced once its
    // events are readable (a wake-up is a hint to read, so counting at least one per commit
    // is all a stream relies on; announcements in one tick fold into one message).
    expect(woken.get(runId)).to.be.at.least(2);
  });
});
