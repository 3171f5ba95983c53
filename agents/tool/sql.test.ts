/** The sql implementation and the postgres-agent entry against the real, seeded Postgres. */
import { expect } from 'chai';
import { AgentError, ValidationError } from '../../lib/index.js';
import { createDatabase, type Database } from '../../db/index.js';
import { testEnvironment } from '../../test/support/environment.js';
import { latestVersions, loadAgentCatalog } from '../catalog.js';
import { rejection, testContext } from '../test-context.js';
import type { AgentContext } from '../types.js';
import { highestPlaceholder, SqlConfig, sqlImplementation } from './sql.js';

describe('sql implementation (real Postgres)', function () {
  let database: Database;
  let ctx: AgentContext;
  let agent: SqlConfig;
  before(async function () {
    const { config } = await testEnvironment();
    database = createDatabase(config.postgres.url, { max: 2 });
    ctx = testContext({ sql: database.sql });
    agent = SqlConfig.parse(latestVersions(await loadAgentCatalog()).get('postgres-agent')?.config);
    await database.sql`create table if not exists agent_sql_notes (id serial primary key, body text not null)`;
  });
  after(async function () {
    if (!database) return;
    await database.sql`drop table if exists agent_sql_notes`;
    await database.close();
  });
  const run = (input: unknown, config: SqlConfig = agent) => sqlImplementation.run(input, ctx, config);

  describe('postgres-agent statements', () => {
    it('prices_in_window keeps the shape of today (symbol, date text, price number), `query` accepted', async () => {
      const out = (await run({ query: 'prices_in_window', params: { symbols: ['MSFT', 'AAPL'], from: '2005-01-01', to: '2005-02-28' } })) as {
        rows: unknown[];
        rowCount: number;
      };
      expect(out.rowCount).to.equal(4);
      expect(out.rows[0]).to.deep.equal({ symbol: 'AAPL', date: '2005-01-01', price: 38.45 });
    });

    it('symbols lists every symbol with its range', async () => {
      const out = (await run({ statement: 'symbols' })) as { rows: { symbol: string; prices: number; first_date: string; last_date: string }[] };
      expect(out.rows.map((r) => r.symbol)).to.deep.equal(['AAPL', 'AMZN', 'GOOG', 'IBM', 'MSFT']);
      expect(out.rows[0]).to.deep.equal({ symbol: 'AAPL', prices: 123, first_date: '2000-01-01', last_date: '2010-03-01' });
    });

    it('price_on_date gives the last price on or before the date', async () => {
      const out = (await run({ statement: 'price_on_date', params: { symbols: ['AAPL', 'GOOG'], date: '2005-01-15' } })) as { rows: unknown[] };
      expect(out.rows).to.deep.equal([
        { symbol: 'AAPL', date: '2005-01-01', price: 38.45 },
        { symbol: 'GOOG', date: '2005-01-01', price: 195.62 },
      ]);
    });

    it('monthly_returns computes month-over-month returns in percent', async () => {
      const out = (await run({ statement: 'monthly_returns', params: { symbols: ['AAPL'], from: '2005-01-01', to: '2005-02-28' } })) as {
        rows: { return_pct: number | null; price: number }[];
      };
      expect(out.rows[0]?.return_pct).to.equal(null);
      expect(out.rows[1]?.return_pct).to.be.closeTo(((out.rows[1]?.price ?? 0) / 38.45 - 1) * 100, 1e-9);
    });

    it('validates params with the declared JSON Schema, naming the field', async () => {
      const bad = await rejection(run({ statement: 'prices_in_window', params: { symbols: [], from: '2005-13-01', to: '2005-02-01' } }));
      expect(bad).to.be.instanceOf(ValidationError);
      expect((bad as ValidationError).field).to.equal('params.symbols');
      expect(bad.message).to.contain('params.from: must match format "date"');
      const extra = await rejection(run({ statement: 'symbols', params: { sql: 'DROP TABLE market_prices' } }));
      expect((extra as ValidationError).field).to.equal('params.sql');
      const unknown = await rejection(run({ statement: 'drop_everything' }));
      expect(unknown.message).to.equal(
        'statement: unknown statement "drop_everything"; known statements: monthly_returns, price_on_date, prices_in_window, symbols',
      );
    });
  });

  describe('modes, limits and binding', () => {
    const config = (statements: Record<string, unknown>, extra: Record<string, unknown> = {}) => SqlConfig.parse({ statements, ...extra });
    const note = { type: 'object', required: ['body'], properties: { body: { type: 'string' } } };

    it('refuses a writing statement declared mode: read (READ ONLY transaction)', async () => {
      const c = config({ sneaky: { sql: 'INSERT INTO agent_sql_notes (body) VALUES ($1) RETURNING id', params: note } });
      const err = await rejection(run({ statement: 'sneaky', params: { body: 'x' } }, c));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.match(/^statement sneaky tried to write but is declared mode: read/);
      const [row] = await database.sql`select count(*)::int as n from agent_sql_notes where body = 'x'`;
      expect(row?.n).to.equal(0);
    });

    it('runs a statement declared mode: write, returning rows and the affected count', async () => {
      const c = config({
        add: { sql: 'INSERT INTO agent_sql_notes (body) VALUES ($1) RETURNING body', params: note, mode: 'write' },
        clear: { sql: 'DELETE FROM agent_sql_notes WHERE body = $1', params: note, mode: 'write' },
      });
      expect(await run({ statement: 'add', params: { body: 'hello' } }, c)).to.deep.equal({ rows: [{ body: 'hello' }], rowCount: 1 });
      await run({ statement: 'add', params: { body: 'hello' } }, c);
      expect(await run({ statement: 'clear', params: { body: 'hello' } }, c)).to.deep.equal({ rows: [], rowCount: 2 });
    });

    it('fails instead of truncating above the row limit', async () => {
      const c = config({ all: { sql: 'SELECT symbol FROM market_prices' } }, { rowLimit: 3 });
      const err = await rejection(run({ statement: 'all' }, c));
      expect(err.message).to.equal('statement all returned more than 3 rows; narrow its parameters');
      const ok = config({ few: { sql: 'SELECT symbol FROM market_prices ORDER BY symbol, date LIMIT 3' } }, { rowLimit: 3 });
      expect(((await run({ statement: 'few' }, ok)) as { rowCount: number }).rowCount).to.equal(3);
    });

    it('applies the statement timeout', async () => {
      const c = config({ slow: { sql: 'SELECT pg_sleep(2)' } }, { statementTimeoutMs: 100 });
      const started = Date.now();
      const err = await rejection(run({ statement: 'slow' }, c));
      expect(err.message).to.equal('statement slow exceeded the statement timeout of 100 ms');
      expect(Date.now() - started).to.be.below(1500);
    });

    it('binds $n to paramOrder (default: the declared properties), absent optionals as NULL', async () => {
      const c = config({
        pair: {
          sql: 'SELECT $1::text AS first, $2::int AS second',
          params: { type: 'object', properties: { second: { type: 'integer' }, first: { type: 'string' } } },
          paramOrder: ['first', 'second'],
        },
        defaulted: { sql: 'SELECT $1::text AS a, $2::text AS b', params: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'string' } } } },
      });
      expect(await run({ statement: 'pair', params: { second: 2, first: 'one' } }, c)).to.deep.equal({ rows: [{ first: 'one', second: 2 }], rowCount: 1 });
      expect(await run({ statement: 'defaulted', params: { a: 'x' } }, c)).to.deep.equal({ rows: [{ a: 'x', b: null }], rowCount: 1 });
    });

    it('checks the config: placeholders without names, unknown paramOrder names, schemas that do not compile', () => {
      const problems = (statements: unknown) => (SqlConfig.safeParse({ statements }).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);
      expect(problems({ s: { sql: 'SELECT $1' } })).to.deep.equal(['statements.s.sql: uses $1 but only 0 parameters are named (paramOrder: none)']);
      expect(problems({ s: { sql: 'SELECT 1', paramOrder: ['x'] } })).to.deep.equal(['statements.s.paramOrder.0: "x" is not a property of params']);
      expect(problems({ s: { sql: 'SELECT 1', params: { type: 'wrong' } } })[0]).to.match(/^statements\.s\.params: params: not a valid JSON Schema/);
      expect(problems({})).to.deep.equal(['statements: declare at least one statement']);
      expect(highestPlaceholder("SELECT '$9', $2 -- $7\n /* $8 */")).to.equal(2);
    });
  });
});
