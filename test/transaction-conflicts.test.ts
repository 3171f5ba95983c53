/**
 * A transaction Postgres rolls back to break a conflict is run again (issue 12 item 6): a real
 * deadlock (40P01) between `retryConflicts`' transaction — the run-scope's — and another
 * connection is provoked so that ours is the victim; its second try commits, and the first try
 * left nothing behind.
 */
import { expect } from 'chai';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { createDatabase, type Database } from '../db/index.js';
import { classifyInfrastructure } from '../lib/index.js';
import { TRANSACTION_TRIES, retryConflicts } from '../services/engine/run-scope.js';
import { testEnvironment } from './support/environment.js';

describe('transaction conflicts', function () {
  this.timeout(30_000);
  let database: Database | undefined;
  let other: postgres.Sql | undefined;

  before(async function () {
    const { config } = await testEnvironment();
    database = createDatabase(config.postgres.url, { max: 2, applicationName: 'baton-test-conflicts' });
    other = postgres(config.postgres.url, { max: 1, onnotice: () => undefined });
    await database.db.execute(sql`create table if not exists conflict_probe (id int primary key, note text)`);
    await database.db.execute(sql`truncate conflict_probe`);
    await database.db.execute(sql`insert into conflict_probe values (1, null), (2, null)`);
  });
  after(async function () {
    await database?.db.execute(sql`drop table if exists conflict_probe`);
    await database?.close(2);
    await other?.end({ timeout: 2 });
  });

  it('runs a transaction chosen as a deadlock victim again, and it commits', async function () {
    const db = database!.db;
    const conflicts: unknown[] = [];
    let tries = 0;
    let holdsRowOne: () => void = () => undefined;
    const ourLock = new Promise<void>((resolve) => {
      holdsRowOne = resolve;
    });
    let rivalHoldsRowTwo: () => void = () => undefined;
    const rivalLock = new Promise<void>((resolve) => {
      rivalHoldsRowTwo = resolve;
    });
    // The rival locks row 2, waits until we hold row 1 and wait for row 2, then asks for row 1.
    const rival = other!.begin(async (tx) => {
      await tx`select id from conflict_probe where id = 2 for update`;
      rivalHoldsRowTwo();
      await ourLock;
      await new Promise((r) => setTimeout(r, 300)); // we are waiting for row 2 by now: we detect first
      await tx`select id from conflict_probe where id = 1 for update`;
      await tx`update conflict_probe set note = 'rival' where id = 2`;
    });
    await rivalLock;

    const result = await retryConflicts(
      () =>
        db.transaction(async (tx) => {
          tries += 1;
          await tx.execute(sql`update conflict_probe set note = ${`ours, try ${tries}`} where id = 1`);
          if (tries === 1) holdsRowOne();
          await tx.execute(sql`select id from conflict_probe where id = 2 for update`);
          return tries;
        }),
      (err) => conflicts.push(err),
    );
    await rival;

    expect(result).to.equal(2);
    expect(conflicts).to.have.length(1);
    expect(classifyInfrastructure(conflicts[0])).to.deep.equal({ kind: 'postgres', reason: '40P01' });
    const rows = await db.execute<{ id: number; note: string }>(sql`select id, note from conflict_probe order by id`);
    expect(rows.map((r) => r.note)).to.deep.equal(['ours, try 2', 'rival']);
  });

  it('gives up after its tries, throwing the conflict, and never repeats other errors', async function () {
    let tries = 0;
    const deadlock = () => {
      tries += 1;
      return database!.db.execute(sql`do $$ begin raise exception 'deadlock detected' using errcode = '40P01'; end $$`);
    };
    const err = await retryConflicts(deadlock, () => undefined).then(() => undefined, (e: unknown) => e);
    expect(classifyInfrastructure(err)?.reason).to.equal('40P01');
    expect(tries).to.equal(TRANSACTION_TRIES);

    tries = 0;
    const failing = () => {
      tries += 1;
      return database!.db.execute(sql`select 1 / 0`);
    };
    await retryConflicts(failing, () => undefined).catch(() => undefined);
    expect(tries).to.equal(1);
  });
});
