/**
 * The Postgres client (db/client.ts over postgres.js, patched: patches/postgres+3.4.9.patch)
 * settles a query whose connection the server closes before it is ready. Postgres at
 * `max_connections` closes some new connections without an ErrorResponse; postgres.js reconnected
 * at once, forever, holding the query: it never settled (an API request hung, a function step's
 * host call outlived its time limit) and the loop opened connections by the thousand. A real TCP
 * server here closes every connection as soon as the startup message arrives.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { createDatabase } from '../db/index.js';
import { classifyInfrastructure } from '../lib/index.js';

describe('a Postgres connection closed before it is ready', function () {
  let server: Server;
  let accepted = 0;
  const sockets = new Set<Socket>();

  before(async function () {
    server = createServer((socket) => {
      accepted += 1;
      sockets.add(socket);
      socket.once('data', () => socket.end());
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async function () {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fails the query as an infrastructure error, one connection per query (no reconnect loop)', async function () {
    const { port } = server.address() as AddressInfo;
    const database = createDatabase(`postgres://postgres@127.0.0.1:${port}/baton`, { max: 1 });
    try {
      const outcome = await database.sql`select 1`.then(
        () => 'resolved',
        (err: unknown) => err,
      );
      expect(outcome).to.be.instanceOf(Error);
      expect(classifyInfrastructure(outcome)?.kind).to.equal('postgres');
      expect(accepted, 'connections opened for one query').to.equal(1);

      // Later queries fail the same way, each after one connection: no reconnect loop.
      const before = accepted;
      for (let i = 0; i < 3; i += 1) {
        const again = await database.sql`select 1`.then(() => 'resolved', (err: unknown) => err);
        expect(again).to.be.instanceOf(Error);
      }
      expect(accepted - before).to.equal(3);
    } finally {
      await database.close(1);
    }
  });
});
