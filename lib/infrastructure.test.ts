import { createServer } from 'node:net';
import { expect } from 'chai';
import postgres from 'postgres';
import { AgentError, RetryLaterError, UnavailableError } from './errors.js';
import { MISSING_PARENT_KEY, classifyInfrastructure, infrastructureBackoffMs, isInfrastructureError, isTransactionConflict, withinMs } from './infrastructure.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('classifyInfrastructure', function () {
  it('classifies a real refused Postgres connection', async function () {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const port = typeof address === 'object' && address ? address.port : 1;
    const sql = postgres(`postgres://postgres@127.0.0.1:${port}/x`, { max: 1, connect_timeout: 2, onnotice: () => undefined });
    const err = await sql`select 1`.then(
      () => undefined,
      (e: unknown) => e,
    );
    await sql.end({ timeout: 1 });
    expect(classifyInfrastructure(err)).to.deep.equal({ kind: 'network', reason: 'ECONNREFUSED' });
  });

  it('classifies postgres.js connection codes and the SQLSTATEs worth repeating, through causes', function () {
    for (const code of ['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', '53300', '57P01', '40001', '40P01', '08006']) {
      expect(classifyInfrastructure(withCode('x', code))?.kind, code).to.equal('postgres');
    }
    // drizzle wraps the driver error as `cause`.
    const wrapped = new Error('Failed query: select 1', { cause: withCode('sorry, too many clients already', '53300') });
    expect(classifyInfrastructure(wrapped)).to.deep.equal({ kind: 'postgres', reason: '53300' });
    expect(isInfrastructureError(withCode('duplicate key', '23505'))).to.equal(false);
  });

  it('classifies Redis and BullMQ failures, a lost parent key among them', function () {
    const missing = new Error(`${MISSING_PARENT_KEY} bull:agent-orchestrator:r.sub.1. addJob`);
    expect(classifyInfrastructure(missing)).to.deep.equal({ kind: 'redis', reason: MISSING_PARENT_KEY });
    expect(classifyInfrastructure(new UnavailableError('the queue is unavailable', { cause: missing }))?.reason).to.equal(MISSING_PARENT_KEY);
    expect(classifyInfrastructure(Object.assign(new Error('limit'), { name: 'MaxRetriesPerRequestError' }))?.kind).to.equal('redis');
    expect(isInfrastructureError(new Error('Connection is closed.'))).to.equal(true);
    // ioredis `commandTimeout` (the API's Redis connection).
    expect(classifyInfrastructure(new Error('Command timed out'))?.kind).to.equal('redis');
  });

  it('tells transaction conflicts (40001, 40P01) from the other infrastructure failures', function () {
    expect(isTransactionConflict(new Error('Failed query', { cause: withCode('could not serialize access', '40001') }))).to.equal(true);
    expect(isTransactionConflict(withCode('deadlock detected', '40P01'))).to.equal(true);
    expect(isTransactionConflict(withCode('too many clients', '53300'))).to.equal(false);
    expect(isTransactionConflict(new Error('boom'))).to.equal(false);
  });

  it('bounds a promise: an UnavailableError (infrastructure) once the time is up', async function () {
    const never = new Promise<never>(() => undefined);
    const err = await withinMs(never, 20, 'Redis PING').then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(UnavailableError);
    expect(isInfrastructureError(err)).to.equal(true);
    expect(await withinMs(Promise.resolve(7), 1000, 'x')).to.equal(7);
  });

  it("never reclassifies an agent's decision, even one caused by a network error", function () {
    expect(isInfrastructureError(new RetryLaterError('upstream down', { cause: withCode('connect', 'ECONNREFUSED') }))).to.equal(false);
    expect(isInfrastructureError(new AgentError('bad input'))).to.equal(false);
    expect(isInfrastructureError(new Error('boom'))).to.equal(false);
    expect(isInfrastructureError('ECONNREFUSED')).to.equal(false);
  });

  it('backs off exponentially with jitter, capped', function () {
    expect(infrastructureBackoffMs(1, 500, 15_000, 0)).to.equal(250);
    expect(infrastructureBackoffMs(1, 500, 15_000, 0.999)).to.be.within(499, 500);
    expect(infrastructureBackoffMs(3, 500, 15_000, 0)).to.equal(1000);
    expect(infrastructureBackoffMs(50, 500, 15_000, 0)).to.equal(7500);
  });
});
