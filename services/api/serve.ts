/** Serving the app: listen, and close gracefully on shutdown. */
import type { Server } from 'node:http';
import type { Express } from 'express';
import type { ShutdownRegistry } from '../../lib/index.js';
import { answerClientErrors } from './client-errors.js';

/** How long open connections (SSE streams) may stay after the others drained, in milliseconds. */
const STREAMS_GRACE_MS = 1000;

/**
 * Listen on `port` and register the server with `shutdown`: stop accepting, close idle
 * connections, and end the rest (open SSE streams would hold the server forever) after
 * {@link STREAMS_GRACE_MS}.
 * @throws the listen error (e.g. `EADDRINUSE`).
 */
export async function serveApp(app: Express, port: number, shutdown: ShutdownRegistry): Promise<Server> {
  const server = app.listen(port);
  answerClientErrors(server); // a 431 or malformed request gets the JSON error shape too
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  shutdown.register('http', async () => {
    server.closeIdleConnections();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    setTimeout(() => server.closeAllConnections(), STREAMS_GRACE_MS).unref();
    await closed;
  });
  return server;
}
