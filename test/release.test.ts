import { expect } from 'chai';
import { sql } from 'drizzle-orm';
import { createDatabase } from '../db/index.js';
import { silentLogger } from '../lib/index.js';
import { release } from '../scripts/release.js';
import { testEnvironment } from './support/environment.js';

describe('release', function () {
  it('changes nothing the second time', async function () {
    const { config } = await testEnvironment(); // the first release already ran here
    const database = createDatabase(config.postgres.url, { max: 1 });
    const snapshot = async () =>
      database.db.execute(sql`select
        (select count(*) from organizations)::int as organizations,
        (select count(*) from api_keys)::int as api_keys,
        (select count(*) from definitions)::int as definitions,
        (select count(*) from market_prices)::int as prices,
        (select sum(xmin::text::bigint) from market_prices)::text as price_versions`);
    try {
      const before = await snapshot();
      const report = await release(config, silentLogger());
      expect(report.databaseCreated).to.equal(false);
      expect(report.definitions.created).to.deep.equal([]);
      expect(report.definitions.unchanged).to.include('kpi-tracking@1');
      expect(report.marketPrices).to.equal(560);
      const after = await snapshot();
      // Same rows, and not one price row rewritten (xmin changes on every update).
      expect(after).to.deep.equal(before);
      expect(Number((after[0] as { prices: number }).prices)).to.equal(560);
    } finally {
      await database.close();
    }
  });
});
