/**
 * Private Redis and Postgres servers for fault tests: each on its own free port and data
 * directory, so a test may stop, kill or restart it without touching the shared ones.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

const run = promisify(execFile);
const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A free TCP port on 127.0.0.1 (the local stack's own helper). */
export { freePort } from '../../scripts/local-stack.js';

/** A throw-away Postgres cluster; run as `postgres` when we are root (initdb refuses root). */
export class PrivateCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'baton-pg-'));
  private readonly asRoot = process.getuid?.() === 0;
  /**
   * @param port - the TCP port it listens on (127.0.0.1).
   * @param settings - extra `-c` settings, e.g. `{ max_connections: '60' }`.
   */
  constructor(
    readonly port: number,
    private readonly settings: Record<string, string> = {},
  ) {}

  private async pg(tool: string, args: string[]): Promise<void> {
    const command = this.asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, tool), ...args]] as const : [join(PG_BIN, tool), args] as const;
    await run(command[0], [...command[1]], { timeout: 60_000 });
  }

  async init(): Promise<void> {
    if (this.asRoot) await run('chown', ['postgres', this.dir]);
    await this.pg('initdb', ['-D', join(this.dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  }

  start(): Promise<void> {
    const settings = { max_connections: '60', ...this.settings };
    const extra = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(' ');
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off ${extra}`;
    return this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-o', options, '-l', join(this.dir, 'log'), '-w', 'start']);
  }

  stop(): Promise<void> {
    return this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  /** How many lines of the server log contain `text`. */
  async countInLog(text: string): Promise<number> {
    const log = await readFile(join(this.dir, 'log'), 'utf8').catch(() => '');
    return log.split('\n').filter((line) => line.includes(text)).length;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A throw-away `redis-server` without persistence: a restart comes back empty. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Whether its process is alive (frozen counts). */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Start it and wait until it answers PING. */
  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused until the server listens: retried below
    try {
      for (let tries = 0; ; tries += 1) {
        try {
          await probe.connect();
          await probe.ping();
          return;
        } catch (err) {
          if (tries > 100) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      probe.disconnect();
    }
  }

  /** Freeze it (SIGSTOP): connections stay open, nothing answers — Redis unreachable. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Thaw it (SIGCONT) after {@link pause}: it answers everything sent meanwhile. */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Kill it (SIGKILL: no goodbye to its clients) and wait for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
