/**
 * Release (Procfile `release`): create the database if needed, migrate, seed (default
 * organization + `BATON_API_KEY`, market prices, the agent catalog `agents/catalog/`) and sync
 * `definitions/`. Idempotent: running
 * it twice changes nothing the second time.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAgentCatalogEntries } from '../agents/index.js';
import { createLogger, loadConfig, projectRoot, runEntry, type Config, type Logger } from '../lib/index.js';
import { createDatabase, ensureDatabase, runMigrations, seedMarketPrices, seedOrganization } from '../db/index.js';
import { loadDefinitionsDir } from '../definitions/index.js';
import { agentTypesOf, seedAgents, syncDefinitions, type AgentSeedReport, type SyncReport } from '../services/store/index.js';

/** What a release did. */
export interface ReleaseReport {
  databaseCreated: boolean;
  organizationId: string;
  marketPrices: number;
  agents: AgentSeedReport;
  definitions: SyncReport;
}

/**
 * Run the release steps against `config.postgres.url`.
 * @param definitionsDir - folder of YAML definitions (default: the project's `definitions/`).
 */
export async function release(config: Config, logger: Logger, definitionsDir = join(projectRoot(), 'definitions')): Promise<ReleaseReport> {
  const databaseCreated = await ensureDatabase(config.postgres.url);
  await runMigrations(config.postgres.url);
  const database = createDatabase(config.postgres.url, { max: 2, applicationName: 'baton-release' });
  try {
    const organizationId = await seedOrganization(database.db, config.auth.apiKey);
    const marketPrices = await seedMarketPrices(database.db);
    const agents = await seedAgents(database.db, organizationId, await loadAgentCatalogEntries());
    const loaded = await loadDefinitionsDir(definitionsDir, await agentTypesOf(database.db, organizationId));
    const parsed = await Promise.all(
      loaded.map(async (definition) => ({ definition, source: await readFile(definition.file, 'utf8') })),
    );
    const definitions = await syncDefinitions(database.db, organizationId, parsed);
    const report = { databaseCreated, organizationId, marketPrices, agents, definitions };
    logger.info(report, 'release done');
    return report;
  } finally {
    await database.close();
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level, service: 'release' });
  await release(config, logger);
}

const isEntry = /release\.(js|ts)$/.test(process.argv[1] ?? '');
if (isEntry) runEntry(process, 'baton release', main);
