/**
 * The `baton` CLI as a user runs it: real child processes (`node --import tsx cli/main.ts …`)
 * against a real API. The progress bar is read through a pseudo-terminal (util-linux `script`).
 * Also: `baton mcp` over stdio with the official MCP client, and `baton dev` as one process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { projectRoot } from '../lib/index.js';
import { testEnvironment } from './support/environment.js';
import { api, startStack, storeDefinition, waitFor, type Stack } from './support/stack.js';
import { toolJson } from './support/mcp.js';

const ROOT = projectRoot();
const CLI = ['--import', 'tsx', join(ROOT, 'cli', 'main.ts')];
const INPUT = { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' };

interface Spawned {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function run(command: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

/** Strip ANSI escape sequences (the bar's cursor movements and colours). */
function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
}

describe('baton CLI', function () {
  this.timeout(120_000);
  let stack: Stack;
  let env: Record<string, string>;
  let dir: string;
  const baton = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [...CLI, ...args], { ...env, ...extra });

  before(async function () {
    stack = await startStack();
    env = { BATON_URL: stack.baseUrl, BATON_API_KEY: stack.apiKey, LOG_LEVEL: 'silent' };
    dir = await mkdtemp(join(tmpdir(), 'baton-cli-'));
    await writeFile(join(dir, 'input.json'), JSON.stringify(INPUT));
    await storeDefinition(
      stack,
      'slug: cli-fails\nversion: 1\nname: fails\ninput: { type: object }\nsteps:\n  - id: boom\n    type: function\n    code: "function main() { throw new Error(\'boom\') }"\n',
    );
  });
  after(async function () {
    await stack?.close();
  });

  it('run --follow in a terminal: draws the progress bar, prints the checkpoint, completes after `baton approve` (exit 0)', async function () {
    const command = [process.execPath, ...CLI, 'run', 'kpi-tracking', '--input', `@${join(dir, 'input.json')}`, '--follow'].map((a) => `'${a}'`).join(' ');
    const follow = run('script', ['-q', '-e', '-f', '-c', `stty cols 120 rows 40; exec ${command}`, '/dev/null'], env);
    const approvalId = await waitFor(async () => /approval ([0-9a-f-]{36}) is waiting/.exec(plain(follow.output()))?.[1], 60_000, 'the approval line');
    // The checkpoint's lines may reach the terminal in more than one write: wait for the last one.
    await waitFor(async () => (/decide \(continue \/ retry \/ abort\)/.test(plain(follow.output())) ? true : undefined), 10_000, 'the decide line');
    const screen = plain(follow.output());
    expect(screen).to.match(/Review the KPIs for AAPL, MSFT/);
    expect(screen).to.match(/decide \(continue \/ retry \/ abort\)/);
    expect(screen).to.match(/[░█]+ 2\/5 steps/);

    const approve = baton(['approve', approvalId, '--decision', 'continue', '--comment', 'from the CLI']);
    expect(await approve.exited, approve.output()).to.equal(0);
    expect(JSON.parse(approve.output())).to.include({ status: 'decided', decision: 'continue' });

    expect(await follow.exited, plain(follow.output())).to.equal(0);
    const end = plain(follow.output());
    expect(end).to.match(/\(decided elsewhere\)/);
    expect(end).to.match(/█+ 5\/5 steps \| run\.completed/);
    expect(end).to.match(/"kpis"/);
  });

  it('run --follow without a terminal prints one line per event and the approval id; exit 2 when cancelled', async function () {
    const follow = baton(['run', 'kpi-tracking', '--input', JSON.stringify(INPUT), '--follow']);
    await waitFor(async () => (/approval [0-9a-f-]{36} is waiting/.test(follow.output()) ? true : undefined), 60_000, 'the approval line');
    expect(follow.output()).to.match(/step\.completed\s+kpis/);
    const runId = /run ([0-9a-f-]{36})/.exec(follow.output())?.[1] ?? '';
    expect((await api(stack, 'POST', `/v1/runs/${runId}/cancel`, { reason: 'test' })).status).to.equal(200);
    expect(await follow.exited, follow.output()).to.equal(2);
    expect(follow.output()).to.match(/run\.cancelled/);
  });

  it('exits 1 when the followed run fails, and names the field of a bad input', async function () {
    const failing = baton(['run', 'cli-fails', '--follow']);
    expect(await failing.exited, failing.output()).to.equal(1);
    expect(failing.output()).to.match(/run\.failed/);

    const bad = baton(['run', 'kpi-tracking', '--input', '{"symbols":["aapl"],"from":"2005-01-01","to":"2006-01-01"}']);
    expect(await bad.exited).to.equal(1);
    expect(bad.output()).to.match(/VALIDATION_FAILED \(400\).*\[field input\.symbols\.0\]/);
  });

  it('--dry-run plans without starting; runs lists, shows and exports', async function () {
    const dry = baton(['run', 'kpi-tracking', '--input', JSON.stringify(INPUT), '--dry-run']);
    expect(await dry.exited, dry.output()).to.equal(0);
    const plan = JSON.parse(dry.output()) as { dryRun: boolean; plan: { order: string[] } };
    expect(plan.dryRun).to.equal(true);
    expect(plan.plan.order).to.deep.equal(['load', 'kpis', 'review', 'summary', 'publish']);

    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: 'kpi-tracking', input: INPUT });
    const listed = baton(['runs', '--definition', 'kpi-tracking']);
    expect(await listed.exited).to.equal(0);
    expect(listed.output()).to.contain(started.body.id);
    const shown = baton(['runs', 'show', started.body.id]);
    expect(await shown.exited).to.equal(0);
    expect(JSON.parse(shown.output())).to.include({ id: started.body.id, definition: 'kpi-tracking' });
    const file = join(dir, 'manifest.json');
    const exported = baton(['runs', 'export', started.body.id, '-o', file]);
    expect(await exported.exited, exported.output()).to.equal(0);
    expect(JSON.parse(await readFile(file, 'utf8'))).to.include({ manifestVersion: 1 });
  });

  it('definitions validate: file:line:column and exit 1 on a broken file, exit 0 on the shipped ones', async function () {
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'slug: broken\nversion: 1\nname: Broken\ninput: { type: object }\nsteps:\n  - id: a\n    type: function\n    code: "function main() { return 1 }"\n    needs: [missing]\n');
    const check = baton(['definitions', 'validate', broken]);
    expect(await check.exited).to.equal(1);
    expect(check.output()).to.match(new RegExp(`^${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:9:\\d+: .*missing`, 'm'));
    const shipped = baton(['definitions', 'validate']);
    expect(await shipped.exited, shipped.output()).to.equal(0);
  });

  it('baton mcp: the MCP server on stdio, with the official client, through the API', async function () {
    const transport = new StdioClientTransport({ command: process.execPath, args: [...CLI, 'mcp'], cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stderr: 'pipe' });
    const client = new Client({ name: 'stdio-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).to.include.members(['start_run', 'decide_approval', 'get_run']);
      const started = toolJson<{ run: { id: string }; pendingApproval: { id: string } }>(
        await client.callTool({ name: 'start_run', arguments: { definition: 'kpi-tracking', input: INPUT, waitSeconds: 40 } }, undefined, { timeout: 45_000 }),
      );
      toolJson(await client.callTool({ name: 'decide_approval', arguments: { approvalId: started.pendingApproval.id, decision: 'continue' } }));
      const done = await waitFor(
        async () => {
          const r = toolJson<{ status: string }>(await client.callTool({ name: 'get_run', arguments: { id: started.run.id } }));
          return r.status === 'completed' ? r : undefined;
        },
        30_000,
        'the run to complete',
      );
      expect(done.status).to.equal('completed');
    } finally {
      await client.close();
    }
  });

  it('baton dev: says how to start Redis when it does not answer', async function () {
    const { env: testEnv } = await testEnvironment();
    const dev = run(process.execPath, [...CLI, 'dev'], { ...testEnv, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(await dev.exited).to.equal(1);
    expect(dev.output()).to.contain('Redis does not answer at redis://127.0.0.1:1. Start it with:\n  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no');
  });

  it('baton dev: API, workers and reconciler in one process; a run completes on it; SIGTERM stops it cleanly', async function () {
    const { env: testEnv } = await testEnvironment();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const dev = run(process.execPath, [...CLI, 'dev', '--port', String(port)], { ...testEnv, LOG_LEVEL: 'silent', BATON_PUBLIC_URL: `http://127.0.0.1:${port}` });
    try {
      // The banner is several writes: wait for its last line (A2A), not its first.
      await waitFor(async () => (dev.output().includes('  A2A ') ? true : undefined), 60_000, `baton dev to start: ${dev.output()}`);
      expect(dev.output()).to.contain('Baton is running');
      expect(dev.output()).to.contain(`console  http://127.0.0.1:${port}/admin/queues`);
      const local = { baseUrl: `http://127.0.0.1:${port}`, apiKey: testEnv.BATON_API_KEY ?? '' };
      expect((await fetch(`${local.baseUrl}/readyz`)).status).to.equal(200);
      const started = await api<{ id: string }>(local, 'POST', '/v1/runs', { definition: 'cli-fails', input: {} });
      const failed = await waitFor(async () => {
        const r = await api<{ status: string }>(local, 'GET', `/v1/runs/${started.body.id}`);
        return r.body.status === 'failed' ? r.body : undefined;
      }, 30_000, 'the run on baton dev');
      expect(failed.status).to.equal('failed');
      dev.child.kill('SIGTERM');
      expect(await dev.exited, dev.output()).to.equal(0);
    } finally {
      // Never leave it running: it shares the test run's database and queue prefix, and its
      // workers (without the test agents) would take the jobs of every later test.
      if (dev.child.exitCode === null && dev.child.signalCode === null) {
        dev.child.kill('SIGKILL');
        await dev.exited;
      }
    }
  });
});
