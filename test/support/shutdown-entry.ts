/**
 * A minimal entry for test/shutdown.test.ts: it owns its process the way every Baton entry does
 * (runEntry + installSignalHandlers from lib/shutdown.ts) and registers one closer that announces
 * itself and never finishes, so the test can signal it twice or let the deadline pass.
 * Arguments: `serve <timeoutMs>`, `fail`, or `reject <code>` (serves, guarded by
 * guardUnhandledRejections, after leaving a promise rejected with an error of that `code` unhandled).
 */
import { ShutdownRegistry, guardUnhandledRejections, installSignalHandlers, runEntry, silentLogger } from '../../lib/index.js';

const [mode = 'serve', timeoutMs = '60000'] = process.argv.slice(2);

function main(): Promise<void> {
  if (mode === 'fail') return Promise.reject(new Error('main failed on purpose'));
  const logger = silentLogger();
  const shutdown = new ShutdownRegistry(logger);
  shutdown.register('stuck resource', () => {
    process.stdout.write('closing\n');
    return new Promise<void>(() => undefined);
  });
  installSignalHandlers(process, shutdown, { logger, timeoutMs: Number(timeoutMs) });
  if (mode === 'reject') {
    guardUnhandledRejections(process, logger);
    // A promise nobody handles, rejected as postgres.js rejects a query whose connection closed.
    void Promise.reject(Object.assign(new Error(`write ${timeoutMs}`), { code: timeoutMs }));
    setTimeout(() => process.stdout.write('still serving\n'), 200);
  }
  setInterval(() => undefined, 1000); // serves until signalled
  process.stdout.write('ready\n');
  return Promise.resolve();
}

runEntry(process, 'fixture', main);
