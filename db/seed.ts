/** Idempotent seed data: the default organization, its API key, and the market prices. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql as dsql } from 'drizzle-orm';
import { projectRoot } from '../lib/index.js';
import type { Db } from './client.js';
import { apiKeys, marketPrices, organizations } from './schema.js';

/** Slug of the organization that `BATON_API_KEY` belongs to. */
export const DEFAULT_ORGANIZATION_SLUG = 'default';

/** SHA-256 hex digest of an API key, as stored in `api_keys.key_hash`. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Every scope a key may hold. */
export const ALL_SCOPES = ['runs:write', 'runs:read', 'approvals:decide', 'definitions:write', 'admin'] as const;

/**
 * Upsert the default organization and register `apiKey` for it with every scope.
 * @returns the organization id.
 */
export async function seedOrganization(db: Db, apiKey: string): Promise<string> {
  const [org] = await db
    .insert(organizations)
    .values({ slug: DEFAULT_ORGANIZATION_SLUG, name: 'Default organization' })
    .onConflictDoUpdate({ target: organizations.slug, set: { slug: DEFAULT_ORGANIZATION_SLUG } })
    .returning({ id: organizations.id });
  if (!org) throw new Error('seed: default organization was not created');
  await db
    .insert(apiKeys)
    .values({
      organizationId: org.id,
      name: 'BATON_API_KEY',
      keyHash: hashApiKey(apiKey),
      prefix: apiKey.slice(0, 8),
      subject: 'service:baton-api-key',
      scopes: [...ALL_SCOPES],
    })
    .onConflictDoNothing({ target: apiKeys.keyHash });
  return org.id;
}

/** One row of vega-datasets' `data/stocks.csv`. */
export interface PriceRow {
  symbol: string;
  /** `YYYY-MM-DD` */
  date: string;
  price: number;
}

const MONTHS: Record<string, string> = {
  Jan: '01', Feb: '02', Mar: '03', Apr: '04', May: '05', Jun: '06',
  Jul: '07', Aug: '08', Sep: '09', Oct: '10', Nov: '11', Dec: '12',
};

/**
 * Parse `stocks.csv` (`symbol,date,price` with dates like `Jan 1 2000`).
 * @throws Error naming the line of any malformed row.
 */
export function parseStocksCsv(text: string): PriceRow[] {
  const lines = text.trim().split(/\r?\n/);
  const header = lines.shift();
  if (header?.trim() !== 'symbol,date,price') throw new Error(`stocks.csv: unexpected header "${header}"`);
  return lines.map((line, i) => {
    const [symbol, rawDate, rawPrice] = line.split(',');
    const m = /^([A-Z][a-z]{2}) (\d{1,2}) (\d{4})$/.exec(rawDate ?? '');
    const price = Number(rawPrice);
    const month = m ? MONTHS[m[1] ?? ''] : undefined;
    if (!symbol || !m || !month || !Number.isFinite(price)) {
      throw new Error(`stocks.csv line ${i + 2}: cannot parse "${line}"`);
    }
    return { symbol, date: `${m[3]}-${month}-${(m[2] ?? '').padStart(2, '0')}`, price };
  });
}

/** Path of the real monthly prices shipped in the `vega-datasets` npm package. */
export function stocksCsvPath(): string {
  return join(projectRoot(), 'node_modules', 'vega-datasets', 'data', 'stocks.csv');
}

/**
 * Load every price of `stocks.csv` into `market_prices` (upsert; re-running changes nothing).
 * @returns the number of rows in the file.
 */
export async function seedMarketPrices(db: Db, csvPath = stocksCsvPath()): Promise<number> {
  const rows = parseStocksCsv(await readFile(csvPath, 'utf8'));
  for (let i = 0; i < rows.length; i += 500) {
    await db
      .insert(marketPrices)
      .values(rows.slice(i, i + 500))
      .onConflictDoUpdate({
        target: [marketPrices.symbol, marketPrices.date],
        set: { price: dsql`excluded.price` },
        setWhere: dsql`${marketPrices.price} is distinct from excluded.price`,
      });
  }
  return rows.length;
}
