/** The postgres-agent catalog entry against the seeded database (real Postgres, read-only transaction). */
import { expect } from 'chai';
import { silentLogger } from '../lib/index.js';
import { bindAgentSpec, latestVersions, loadAgentCatalog, type AgentContext, type AgentImplementation, type SqlConfig } from '../agents/index.js';
import { testContext } from '../agents/test-context.js';
import { createDatabase, type Database } from '../db/index.js';
import { testEnvironment } from './support/environment.js';

describe('postgres-agent on the seeded market prices', function () {
  let database: Database;
  let ctx: AgentContext;
  let implementation: AgentImplementation;
  let config: SqlConfig;
  before(async function () {
    const { config: env } = await testEnvironment();
    database = createDatabase(env.postgres.url, { max: 2 });
    ctx = testContext({ runId: 'run', stepId: 'load', idempotencyKey: 'run.load.1', logger: silentLogger(), sql: database.sql, llm: env.llm });
    const spec = latestVersions(await loadAgentCatalog()).get('postgres-agent');
    if (!spec) throw new Error('postgres-agent is not in the catalog');
    const bound = bindAgentSpec(spec);
    implementation = bound.implementation;
    config = bound.config as SqlConfig;
  });
  after(async function () {
    await database?.close();
  });

  it('is the sql implementation (a tool agent)', function () {
    expect(implementation.name).to.equal('sql');
    expect(implementation.type).to.equal('tool');
  });

  it('returns the prices in the window, in symbol and date order', async function () {
    const output = (await implementation.run(
      { query: 'prices_in_window', params: { symbols: ['MSFT', 'AAPL'], from: '2005-01-01', to: '2005-03-31' } },
      ctx,
      config,
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

  it('runs read-only: the entry has no writing statement and the transaction refuses writes', async function () {
    const modes = Object.fromEntries(Object.entries(config.statements).map(([name, statement]) => [name, statement.mode]));
    expect(Object.keys(modes)).to.have.members(['prices_in_window', 'symbols', 'price_on_date', 'monthly_returns']);
    expect(Object.values(modes).every((mode) => mode === 'read'), JSON.stringify(modes)).to.equal(true);
    const refused = await database.sql
      .begin('read only', (tx) => tx`insert into market_prices values ('X', '2000-01-01', 1)`)
      .then(
        () => undefined,
        (err: { code?: string }) => err.code,
      );
    expect(refused).to.equal('25006'); // read_only_sql_transaction
  });
});
