/**
 * The bench's outside measurements (scripts/bench-measure.ts) against the real thing: statements
 * counted from the real Postgres server log, CPU time from /proc, Redis bytes of a real prefix.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { countStatements, cpuSnapshot, cpuDeltaMs, fileSize, memoryGrowth, percentile, prefixMemory, readFrom, serverLogFile, deletePrefix } from '../scripts/bench-measure.js';
import { testEnvironment } from './support/environment.js';

describe('bench measurements', function () {
  this.timeout(60_000);

  it('counts statements, transactions and durable commits of one database from the server log', async function () {
    const { config } = await testEnvironment();
    const admin = new URL(config.postgres.url);
    admin.pathname = '/postgres';
    const adminSql = postgres(admin.toString(), { max: 1, onnotice: () => undefined });
    const name = `baton_test_log_${randomBytes(4).toString('hex')}`;
    try {
      const logFile = await serverLogFile(adminSql);
      if (!logFile) this.skip();
      await adminSql.unsafe(`create database "${name}"`);
      await adminSql.unsafe(`alter database "${name}" set log_statement = 'all'`);
      const url = new URL(config.postgres.url);
      url.pathname = `/${name}`;
      const sql = postgres(url.toString(), { max: 1, onnotice: () => undefined });
      try {
        await sql`create table t (id int primary key, v text)`;
        const offset = await fileSize(logFile);
        await sql.begin(async (tx) => {
          await tx`insert into t values (${1}, ${'a'})`;
          await tx`select v from t where id = ${1}`;
        }); // begin, insert, select, commit: 4 statements, 1 transaction, 1 durable commit
        await sql.begin(async (tx) => {
          await tx`select v from t where id = ${1}`;
        }); // 3 statements, 1 read-only transaction
        await sql.begin(async (tx) => {
          await tx.unsafe('set local synchronous_commit = off');
          await tx`update t set v = ${'b'} where id = ${1}`;
        }); // 4 statements, 1 transaction, not durable
        await sql`
          delete from t
          where id = ${1}`; // multi-line, outside a block: 1 statement, 1 durable commit
        await sql`select 1`; // 1 statement, 1 transaction
        // Log lines reach the file asynchronously: wait for the last one.
        const deadline = Date.now() + 10_000;
        let text = '';
        while (Date.now() < deadline) {
          text = await readFrom(logFile, offset);
          if (/select 1/.test(text)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(countStatements(text, name)).to.deep.equal({ statements: 13, transactions: 5, durableCommits: 2 });
        expect(countStatements(text, 'some_other_db')).to.deep.equal({ statements: 0, transactions: 0, durableCommits: 0 });
        const [self] = await sql<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
        expect(countStatements(text, name, [self?.pid ?? 0]).statements).to.equal(0);
      } finally {
        await sql.end({ timeout: 2 });
      }
    } finally {
      await adminSql.unsafe(`drop database if exists "${name}" with (force)`);
      await adminSql.end({ timeout: 2 });
    }
  });

  it("counts Baton's hot-path functions by their commit: the claim asynchronous, the completion durable", function () {
    const line = (text: string) => `2026-12-01 15:00:00.000 UTC [7] postgres@bench LOG:  statement: ${text}`;
    const text = [
      line('select * from baton_claim_step($1, $2, $3, $4, $5, $6::jsonb, $7)'),
      line('select * from baton_complete_step($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)'),
      line('select 1'),
    ].join('\n');
    expect(countStatements(text, 'bench')).to.deep.equal({ statements: 3, transactions: 3, durableCommits: 1 });
  });

  it('reads CPU time of a process from /proc as the kernel accounts it (getrusage agrees)', async function () {
    // getrusage counts every thread of the process, as /proc does, so other threads (GC, libuv,
    // an earlier test's worker threads) may spend CPU while the snapshots are read: bracket the
    // /proc window by what getrusage saw surely inside it and surely around it.
    const used = (since: NodeJS.CpuUsage) => {
      const d = process.cpuUsage(since);
      return (d.user + d.system) / 1000;
    };
    const outer = process.cpuUsage();
    const before = await cpuSnapshot([process.pid]);
    const inner = process.cpuUsage();
    while (used(inner) < 100) Math.sqrt(Math.random());
    const inside = used(inner);
    const spent = cpuDeltaMs(before, await cpuSnapshot([process.pid]));
    const around = used(outer);
    // /proc counts in 10 ms clock ticks.
    expect(spent).to.be.within(inside - 20, around + 20);
    expect(cpuDeltaMs(new Map(), await cpuSnapshot([2 ** 22 + 1]))).to.equal(0); // no such pid
  });

  it('sums Redis memory of a prefix per key group', async function () {
    const { config } = await testEnvironment();
    const redis = new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
    const prefix = `${config.redis.prefix}-measure`;
    try {
      const empty = await prefixMemory(redis, prefix);
      expect(empty).to.include({ bytes: 0, keys: 0 });
      await redis.hset(`${prefix}:q:job1`, 'data', 'x'.repeat(500));
      await redis.hset(`${prefix}:q:job2`, 'data', 'x'.repeat(500));
      await redis.xadd(`${prefix}:q:events`, '*', 'event', 'added');
      const after = await prefixMemory(redis, prefix);
      expect(after.keys).to.equal(3);
      expect(after.groups.get('q:<job>')).to.be.greaterThan(1000);
      expect(after.groups.has('q:events')).to.equal(true);
      const growth = memoryGrowth(empty, after, 2);
      expect(growth.split(', ').sort()).to.have.length(2);
      expect(growth).to.match(/q:<job> \d+ B/).and.to.match(/q:events \d+ B/);
    } finally {
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it('takes nearest-rank percentiles', function () {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect([percentile(values, 50), percentile(values, 99), percentile(values, 100)]).to.deep.equal([50, 99, 100]);
    expect(Number.isNaN(percentile([], 50))).to.equal(true);
  });
});
