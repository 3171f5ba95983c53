/**
 * The one shutdown policy of every entry (lib/shutdown.ts), on real child processes and real
 * signals: a worker started from the Procfile stops cleanly on SIGTERM; a second signal exits
 * 130 at once; a closer that outlives the deadline exits 1; a failing `main` exits 1 with its
 * message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../lib/index.js';
import { exited, spawnProcess } from '../scripts/procfile.js';
import { testEnvironment } from './support/environment.js';
import { waitFor } from './support/stack.js';

interface Watched {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function watch(child: ChildProcess): Watched {
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  return { child, stdout: () => out, stderr: () => err };
}

function fixture(...args: string[]): Watched {
  return watch(
    spawn(process.execPath, ['--import', 'tsx', join('test', 'support', 'shutdown-entry.ts'), ...args], {
      cwd: projectRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

async function printed(w: Watched, text: string, label: string): Promise<void> {
  await waitFor(() => Promise.resolve(w.stdout().includes(text) ? true : undefined), 30_000, label);
}

describe('shutdown: one signal and exit policy for every entry', function () {
  it('keeps serving through an unhandled rejection from an infrastructure failure, and exits 1 on any other', async function () {
    const survivor = fixture('reject', 'CONNECTION_CLOSED');
    try {
      await printed(survivor, 'still serving', 'the guarded process to keep serving');
      expect(survivor.child.exitCode).to.equal(null);
    } finally {
      survivor.child.kill('SIGKILL');
    }
    const bug = fixture('reject', 'NOT_INFRASTRUCTURE');
    const [code] = (await once(bug.child, 'exit')) as [number | null];
    expect(code, bug.stderr()).to.equal(1);
    expect(bug.stdout()).not.to.include('still serving');
  });

  this.timeout(60_000);
  const started: ChildProcess[] = [];
  after(async function () {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(started.map((c) => exited(c)));
  });

  it('a worker from the Procfile closes its resources and exits 0 on SIGTERM', async function () {
    const { env } = await testEnvironment();
    const worker = watch(spawnProcess('worker', { ...env, LOG_LEVEL: 'info' }));
    started.push(worker.child);
    await printed(worker, 'worker ready', 'the worker to be ready');
    worker.child.kill('SIGTERM');
    const { code, signal } = await exited(worker.child);
    expect({ code, signal }, worker.stderr()).to.deep.equal({ code: 0, signal: null });
    expect(worker.stdout()).to.include('"msg":"shutting down"');
  });

  it('exits 130 at once on a second signal while closing', async function () {
    const entry = fixture('serve', '60000');
    started.push(entry.child);
    await printed(entry, 'ready', 'the fixture to serve');
    entry.child.kill('SIGTERM');
    await printed(entry, 'closing', 'shutdown to start');
    entry.child.kill('SIGINT');
    expect(await exited(entry.child)).to.deep.equal({ code: 130, signal: null });
  });

  it('exits 1 when a resource is still closing at the deadline', async function () {
    const entry = fixture('serve', '300');
    started.push(entry.child);
    await printed(entry, 'ready', 'the fixture to serve');
    entry.child.kill('SIGTERM');
    expect(await exited(entry.child)).to.deep.equal({ code: 1, signal: null });
    expect(entry.stdout()).to.include('closing');
  });

  it('exits 1 with "<name>: <message>" when main fails', async function () {
    const entry = fixture('fail');
    started.push(entry.child);
    expect(await exited(entry.child)).to.deep.equal({ code: 1, signal: null });
    expect(entry.stderr()).to.equal('fixture: main failed on purpose\n');
  });
});
