/**
 * `npm run reconcile`: re-create from Postgres every job an unfinished run needs and Redis does
 * not have (the same work the periodic `reconcile` job does), print what it did, and exit.
 */
import { createLogger, loadConfig, runEntry } from '../lib/index.js';
import { createDatabase } from '../db/index.js';
import { Queues, createRedis } from '../queues/index.js';
import { reconcileAll } from '../services/engine/index.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level, service: 'reconcile' });
  const database = createDatabase(config.postgres.url, { max: 4, applicationName: 'baton-reconcile' });
  const producer = createRedis(config.redis.url, 'producer');
  const queues = new Queues(producer, config.redis.prefix, logger, { keepCompletedJobs: config.redis.keepCompletedJobs });
  try {
    const report = await reconcileAll({ config, database, queues, logger, agentTypes: new Map() });
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await queues.close();
    await producer.quit();
    await database.close();
  }
}

runEntry(process, 'baton reconcile', main, { exitOnSuccess: true });
