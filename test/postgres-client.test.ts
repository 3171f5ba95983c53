/**
 * The Postgres client (db/client.ts over postgres.js, patched: patches/postgres+3.4.9.patch):
 * - settles a query whose connection the server closes before it is ready. Postgres at
 *   `max_connections` closes some new connections without an ErrorResponse; postgres.js
 *   reconnected at once, forever, holding the query: it never settled (an API request hung, a
 *   function step's host call outlived its time limit) and the loop opened connections by the
 *   thousand. A real TCP server here closes every connection as soon as the startup message
 *   arrives.
 * - never runs a transaction's statement after its connection was lost. postgres.js reconnects
 *   the connection for the pool's next query, and a statement the transaction's callback issued
 *   after that (or its ROLLBACK) ran there: outside any transaction, or inside another one.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import postgres from 'postgres';
import { createDatabase } from '../db/index.js';
import { classifyInfrastructure } from '../lib/index.js';
import { testEnvironment } from './support/environment.js';

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

describe('a transaction whose connection was terminated', function () {
  it('runs none of its later statements on the reconnected connection', async function () {
    const { config } = await testEnvironment();
    const table = `pg_client_probe_${Math.random().toString(36).slice(2, 10)}`;
    const admin = postgres(config.postgres.url, { max: 1, onnotice: () => undefined });
    const database = createDatabase(config.postgres.url, { max: 1 });
    try {
      await admin.unsafe(`create table ${table} (n int)`);
      let backend: (pid: number) => void = () => undefined;
      const pid = new Promise<number>((resolve) => (backend = resolve));
      let resume: () => void = () => undefined;
      const paused = new Promise<void>((resolve) => (resume = resolve));
      const transaction = database.sql.begin(async (tx) => {
        const [row] = await tx<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
        backend(row?.pid ?? 0);
        await paused; // the callback awaits something else than its connection
        await tx.unsafe(`insert into ${table} values (1)`);
      });
      const outcome = transaction.then(() => 'committed', (err: unknown) => err);
      await admin`select pg_terminate_backend(${await pid})`;
      // The pool's next query reconnects the (only) connection and runs on it.
      const [after] = await database.sql<Array<{ n: number }>>`select 1 as n`;
      expect(after?.n).to.equal(1);
      resume();
      expect(await outcome).to.be.instanceOf(Error);
      const [late] = await database.sql<Array<{ n: number }>>`select 1 as n`; // anything still queued has run
      expect(late?.n).to.equal(1);
      const rows = await admin.unsafe(`select n from ${table}`);
      expect(rows, 'rows written by the lost transaction').to.have.length(0);
    } finally {
      await admin.unsafe(`drop table if exists ${table}`);
      await admin.end({ timeout: 1 });
      await database.close(1);
    }
  });
});
