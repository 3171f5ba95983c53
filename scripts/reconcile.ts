/**
 * `npm run reconcile` (and `baton reconcile`): re-create from Postgres every job an unfinished run
 * needs and Redis does not have (the same work the periodic `reconcile` job does), print what it
 * did, and exit.
 */
import { ShutdownRegistry, createLogger, loadConfig, runEntry } from '../lib/index.js';
import { connectEngine, reconcileAll, type ReconcileReport } from '../services/engine/index.js';

/** Reconcile every unfinished run once, with clients of its own (closed before it returns). */
export async function reconcileOnce(): Promise<ReconcileReport> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level, service: 'reconcile' });
  const shutdown = new ShutdownRegistry(logger);
  try {
    return await reconcileAll(connectEngine(config, logger, shutdown, { applicationName: 'baton-reconcile', poolMax: 4 }));
  } finally {
    await shutdown.run(config.shutdown.timeoutMs);
  }
}

if (process.argv[1] && /reconcile\.(ts|js)$/.test(process.argv[1])) {
  runEntry(process, 'baton reconcile', async () => {
    process.stdout.write(`${JSON.stringify(await reconcileOnce())}\n`);
  }, { exitOnSuccess: true });
}
