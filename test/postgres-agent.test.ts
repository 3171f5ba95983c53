/** The postgres-agent against the seeded database (real Postgres, read-only transaction). */
import { expect } from 'chai';
import { silentLogger } from '../lib/index.js';
import { namedAgents, type AgentContext } from '../agents/index.js';
import { testContext } from '../agents/test-context.js';
import { createDatabase, type Database } from '../db/index.js';
import { testEnvironment } from './support/environment.js';

describe('postgres-agent on the seeded market prices', function () {
  let database: Database;
  let ctx: AgentContext;
  before(async function () {
    const { config } = await testEnvironment();
    database = createDatabase(config.postgres.url, { max: 2 });
    ctx = testContext({ runId: 'run', stepId: 'load', idempotencyKey: 'run.load.1', logger: silentLogger(), sql: database.sql, llm: config.llm });
  });
  after(async function () {
    await database?.close();
  });

  it('returns the prices in the window, in symbol and date order', async function () {
    const agent = namedAgents.get('postgres-agent')!;
    const output = (await agent.run(
      { query: 'prices_in_window', params: { symbols: ['MSFT', 'AAPL'], from: '2005-01-01', to: '2005-03-31' } },
      ctx,
    )) as { rows: Array<{ symbol: string; date: string; price: number }>; rowCount: number };
    expect(output.rowCount).to.equal(6);
    expect(output.rows.map((r) => `${r.symbol} ${r.date}`)).to.deep.equal([
      'AAPL 2005-01-01',
      'AAPL 2005-02-01',
      'AAPL 2005-03-01',
      'MSFT 2005-01-01',
      'MSFT 2005-02-01',
      'MSFT 2005-03-01',
    ]);
    expect(output.rows[0]).to.deep.equal({ symbol: 'AAPL', date: '2005-01-01', price: 38.45 });
  });

  it('runs read-only: the registry has no writing statement and the transaction refuses writes', async function () {
    const refused = await database.sql
      .begin('read only', (tx) => tx`insert into market_prices values ('X', '2000-01-01', 1)`)
      .then(
        () => undefined,
        (err: { code?: string }) => err.code,
      );
    expect(refused).to.equal('25006'); // read_only_sql_transaction
  });
});
