#!/usr/bin/env node
/**
 * `baton`: Baton from a terminal (issue 10). Commands talk HTTP to the API (`BATON_URL`,
 * `BATON_API_KEY`, or `--url` / `--api-key`), except `dev`, `definitions validate|sync` and
 * `reconcile`, which work on the local files, database and Redis. See README *CLI*.
 *
 * Exit codes: 0 success (a followed run completed), 1 failure (a followed run failed, an API or
 * validation error), 2 a followed run was cancelled.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createLogger, installSignalHandlers, loadCliConfig, loadConfig, runEntry, silentLogger } from '../lib/index.js';
import { createMcpServer, registerDefinitionTools } from '../services/api/index.js';
import { release } from '../scripts/release.js';
import { reconcileOnce } from '../scripts/reconcile.js';
import { ApiError, BatonClient } from './client.js';
import { checkDefinitions, definitionFiles } from './definitions-check.js';
import { startDev } from './dev.js';
import { followRun } from './follow.js';

/** The exit code a command chose (0 unless it says otherwise). */
let exitCode = 0;

/** How long `baton dev` may take to close everything after a signal, in milliseconds. */
const DEV_SHUTDOWN_TIMEOUT_MS = 10_000;

const out = (text: string) => process.stdout.write(`${text}\n`);
const json = (value: unknown) => out(JSON.stringify(value, null, 2));

/** `--input '{"a":1}'` or `--input @file.json`. */
async function readJsonArgument(value: string, name: string): Promise<unknown> {
  const text = value.startsWith('@') ? await readFile(value.slice(1), 'utf8') : value;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InvalidArgumentError(`${name} must be JSON or @file with JSON (${(err as Error).message})`);
  }
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

const program = new Command();
program
  .name('baton')
  .description('Baton agent orchestration from a terminal')
  .option('--url <url>', 'Baton API base URL (default: BATON_URL or http://localhost:3000)')
  .option('--api-key <key>', 'API key (default: BATON_API_KEY or the development key)')
  .showHelpAfterError();

function client(): BatonClient {
  const config = loadCliConfig();
  const opts = program.opts<{ url?: string; apiKey?: string }>();
  return new BatonClient((opts.url ?? config.url).replace(/\/+$/, ''), opts.apiKey ?? config.apiKey);
}

program
  .command('run <slug>')
  .description('start a run of a definition (and follow it with --follow)')
  .option('-i, --input <json|@file>', 'run input as JSON, or @file', '{}')
  .option('-f, --follow', 'follow the run: progress bar, step events, checkpoint prompts')
  .option('--idempotency-key <key>', 'the same key returns the same run')
  .option('--version <n>', 'definition version (default: latest)', positiveInt)
  .option('--dry-run', 'validate and plan without starting (POST /v1/runs?dryRun=true)')
  .action(async (slug: string, o: { input: string; follow?: boolean; idempotencyKey?: string; version?: number; dryRun?: boolean }) => {
    const input = await readJsonArgument(o.input, '--input');
    const body = { definition: slug, input, ...(o.version === undefined ? {} : { version: o.version }) };
    const api = client();
    if (o.dryRun) {
      json(await api.dryRun(body));
      return;
    }
    const run = await api.startRun({ ...body, ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) });
    if (!o.follow) {
      json(run);
      return;
    }
    exitCode = await followRun(api, run.id, { stdout: process.stdout, stdin: process.stdin, interactive: process.stdin.isTTY === true && process.stdout.isTTY === true });
  });

program
  .command('approve <approvalId>')
  .description('decide an approval')
  .requiredOption('-d, --decision <decision>', 'continue | retry | abort')
  .option('--input <json|@file>', 'modified data (validated against the checkpoint\'s modify schema)')
  .option('--comment <text>', 'comment recorded with the decision')
  .action(async (approvalId: string, o: { decision: string; input?: string; comment?: string }) => {
    const input = o.input === undefined ? undefined : await readJsonArgument(o.input, '--input');
    json(await client().decideApproval(approvalId, { decision: o.decision, ...(input === undefined ? {} : { input }), ...(o.comment ? { comment: o.comment } : {}) }));
  });

const runs = program
  .command('runs')
  .description('list runs (newest first); `runs show <id>`, `runs export <id>`')
  .option('--status <list>', 'comma-separated statuses, e.g. running,failed')
  .option('--definition <slug>', 'only runs of this definition')
  .option('--limit <n>', '1..200 (default 50)', positiveInt)
  .action(async (o: { status?: string; definition?: string; limit?: number }) => {
    const page = await client().listRuns(o);
    for (const r of page.items) out([r['id'], String(r['status']).padEnd(10), `${String(r['definition'])}@${String(r['version'])}`, r['createdAt']].join('  '));
    if (page.items.length === 0) out('no runs');
  });
runs
  .command('show <id>')
  .description('one run with its steps and approvals (JSON)')
  .action(async (id: string) => {
    json(await client().getRun(id));
  });
runs
  .command('export <id>')
  .description("the run's manifest (audit/replay record) as a JSON artifact")
  .option('-o, --output <file>', 'write to this file instead of stdout')
  .action(async (id: string, o: { output?: string }) => {
    const manifest = JSON.stringify(await client().getManifest(id), null, 2);
    if (o.output) {
      await writeFile(o.output, `${manifest}\n`);
      out(`wrote ${o.output}`);
    } else {
      out(manifest);
    }
  });

const definitions = program.command('definitions').description('check or store definition files');
definitions
  .command('validate [paths...]')
  .description('check definition files (default: definitions/); prints file:line:column: problem, exits 1 on any')
  .action(async (paths: string[]) => {
    const problems = await checkDefinitions(paths);
    for (const p of problems) process.stderr.write(`${p.file}:${p.line}:${p.column}: ${p.message}\n`);
    if (problems.length > 0) {
      exitCode = 1;
      return;
    }
    out(`${(await definitionFiles(paths)).length} definition file(s) valid`);
  });
definitions
  .command('sync [dir]')
  .description('migrate, seed and store the definitions of a folder (default: definitions/) for the default organization, as release does')
  .action(async (dir: string | undefined) => {
    const config = loadConfig();
    const report = await release(config, createLogger({ level: 'warn', service: 'cli' }), ...(dir ? [dir] : []));
    json(report.definitions);
  });

program
  .command('reconcile')
  .description('re-create from Postgres every job unfinished runs need (DATABASE_URL, REDIS_URL)')
  .action(async () => {
    json(await reconcileOnce());
  });

program
  .command('mcp')
  .description('the MCP server on stdio, acting through the API (BATON_URL, BATON_API_KEY)')
  .action(async () => {
    const api = client();
    const server = createMcpServer(api);
    await registerDefinitionTools(server, api);
    await server.connect(new StdioServerTransport());
    await new Promise<void>((resolve) => {
      server.server.onclose = () => resolve();
      process.stdin.once('end', () => resolve());
    });
    await server.close();
  });

program
  .command('dev')
  .description('API, every worker and the reconciler in one process, after migrations and definition sync')
  .option('-p, --port <port>', 'HTTP port (default PORT or 3000)', positiveInt)
  .action(async (o: { port?: number }) => {
    const dev = await startDev(o, out);
    // Serve until SIGTERM/SIGINT: exit 0 once everything closed, 1 otherwise; a second signal exits 130.
    const stop = async (): Promise<boolean> => {
      out('stopping…');
      return dev.stop();
    };
    installSignalHandlers(process, { run: stop }, { logger: silentLogger(), timeoutMs: DEV_SHUTDOWN_TIMEOUT_MS });
    await new Promise<never>(() => undefined);
  });

/** Run the command; an API error is reported with its code, status and field. */
async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return exitCode;
  } catch (err) {
    if (err instanceof ApiError) throw new Error(`${err.code} (${err.status}): ${err.message}${err.field ? ` [field ${err.field}]` : ''}`);
    throw err;
  }
}

// Exit when the command is done (open handles are closed by each command), with its exit code.
runEntry(process, 'baton', main, { exitOnSuccess: true });
