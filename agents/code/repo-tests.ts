/**
 * `repo-tests` (type `tool`): the `test` stage of a code change. It merges the changes of the
 * build items into one patch (a run asset), lints the changed files with a linter step module,
 * and runs the repository's own tests on the merged tree in a child process — in a fresh
 * temporary directory, with a time limit, and without network.
 *
 * Input: `{repo: {files}, builds: [codemod outputs | null], lint?: {module, options}, timeoutMs?}`.
 *
 * Merge: build items each changed the original repository; a file changed by one item takes its
 * text, a file changed by several gets each later change rebased onto the earlier ones through
 * its unified diff (jsdiff `applyPatch`); hunks that do not apply are a conflict (that item's
 * change of that file is left out and listed in `conflicts`).
 *
 * Tests: the repository's `package.json` `scripts.test` run by `/bin/sh -c` (as `npm test` would,
 * with `node_modules/.bin` on PATH), or `node --test` without one; environment: PATH, HOME and
 * TMPDIR inside the temporary directory, `CI=true`, `NODE_ENV=test`, nothing else of the worker's.
 * No network: the child runs in a new network namespace (`unshare --net`, only loopback, down)
 * where the host allows it; otherwise Node's `net`/`dns` connect functions are replaced through
 * `NODE_OPTIONS=--require` (`network: "node-guard"`, which guards only Node children). The time
 * limit kills the child's whole process group (SIGKILL); so does the step's AbortSignal.
 *
 * Output: `{passed, exitCode, signal, timedOut, durationMs, command, network, tests: {pass, fail}
 * | null, output (the last `outputMaxChars` of stdout+stderr), findings, conflicts, changed, diff,
 * diffAssetId, reportAssetId}`; the report asset (`test-report.json`) holds the same without the
 * diff. A failing test run is an output (`passed: false`), not a step failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, sep } from 'node:path';
import { z } from 'zod';
import { AgentError, CancelledError, ValidationError } from '../../lib/index.js';
import { MODULE_REF_PATTERN } from '../modules.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { checkModuleCall, parseInput, RepoInput } from './codemod.js';
import { rebase, repoPatch, type RepoFiles } from './patch.js';

/** The entry's `config:`. */
export const RepoTestsConfig = z
  .object({
    /** Default time limit of the test command, in milliseconds (the input may ask for less or more, up to `maxTimeoutMs`). */
    timeoutMs: z.number().int().positive().max(3_600_000).default(120_000),
    maxTimeoutMs: z.number().int().positive().max(3_600_000).default(600_000),
    /** Characters of output kept (the end of it). */
    outputMaxChars: z.number().int().positive().max(1_000_000).default(20_000),
    /** Function-runtime limits of the lint module call. */
    lintLimits: z
      .object({ timeoutMs: z.number().int().positive().default(60_000), memoryMb: z.number().int().positive().default(256) })
      .strict()
      .default({ timeoutMs: 60_000, memoryMb: 256 }),
  })
  .strict();
export type RepoTestsConfig = z.infer<typeof RepoTestsConfig>;

const BuildOutput = z.looseObject({
  goal: z.string().nullable().optional(),
  module: z.string().nullable(),
  files: z.record(z.string(), z.string()),
});

const RepoTestsInput = z
  .object({
    repo: RepoInput,
    builds: z.array(BuildOutput.nullable()).default([]),
    lint: z
      .object({ module: z.string().regex(MODULE_REF_PATTERN), options: z.record(z.string(), z.unknown()).default({}) })
      .strict()
      .optional(),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict();

/** A lint finding (1-based line and column), as linter modules return them. */
export interface Finding {
  rule: string;
  file: string;
  line: number;
  column: number;
  message: string;
}

const LintResult = z.object({
  findings: z.array(z.object({ rule: z.string(), file: z.string(), line: z.number(), column: z.number(), message: z.string() })),
});

/** How the test command was kept off the network. */
export type NetworkIsolation = 'namespace' | 'node-guard';

/** The test report. */
export interface TestReport {
  passed: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  command: string;
  network: NetworkIsolation;
  /** From TAP's `# pass N` / `# fail N` (node --test), when printed. */
  tests: { pass: number; fail: number } | null;
  output: string;
  findings: Finding[];
  conflicts: Array<{ file: string; goal: string | null; module: string | null }>;
  changed: string[];
}

/** What the step returns: the report, the merged patch and the asset ids. */
export interface RepoTestsOutput extends TestReport {
  diff: string;
  diffAssetId: string | null;
  reportAssetId: string;
}

/** Merge the builds' changes (in order) onto `base`; see the module comment. */
export function mergeBuilds(
  base: Readonly<RepoFiles>,
  builds: ReadonlyArray<z.infer<typeof BuildOutput> | null>,
): { files: RepoFiles; conflicts: TestReport['conflicts'] } {
  const files: RepoFiles = {};
  const conflicts: TestReport['conflicts'] = [];
  for (const build of builds) {
    if (!build) continue;
    for (const path of Object.keys(build.files).sort()) {
      const after = build.files[path] ?? '';
      const current = files[path];
      if (current === undefined) {
        files[path] = after;
        continue;
      }
      const merged = rebase(current, base[path] ?? '', after);
      if (merged === undefined) conflicts.push({ file: path, goal: build.goal ?? null, module: build.module });
      else files[path] = merged;
    }
  }
  for (const path of Object.keys(files)) if (files[path] === base[path]) delete files[path];
  return { files, conflicts };
}

let namespaceSupport: boolean | undefined;
/** Whether `unshare --net` works here (checked once per process). */
function canUnshareNetwork(): boolean {
  if (namespaceSupport === undefined) {
    const probe = spawnSync('unshare', ['--net', 'true'], { stdio: 'ignore', timeout: 5_000 });
    namespaceSupport = probe.status === 0;
  }
  return namespaceSupport;
}

/** Preloaded into Node children when no network namespace is available. */
const NODE_NETWORK_GUARD = `'use strict';
const net = require('node:net');
const dns = require('node:dns');
const refuse = () => { const e = new Error('network access is disabled for repository tests'); e.code = 'ENETUNREACH'; throw e; };
net.Socket.prototype.connect = refuse;
dns.lookup = refuse;
dns.resolve = refuse;
if (dns.promises) { dns.promises.lookup = refuse; dns.promises.resolve = refuse; }
if (typeof globalThis.fetch === 'function') globalThis.fetch = () => Promise.reject(new Error('network access is disabled for repository tests'));
`;

/** Write `files` under `root`, refusing paths that leave it. */
async function writeTree(root: string, files: Readonly<RepoFiles>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    const target = normalize(join(root, path));
    if (!target.startsWith(root + sep) || path.startsWith('/')) {
      throw new ValidationError(`repo-tests: input.repo.files: path ${JSON.stringify(path)} leaves the repository`, { field: 'input.repo.files' });
    }
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, text);
  }
}

function testCommandOf(files: Readonly<RepoFiles>): string {
  const manifest = files['package.json'];
  if (manifest !== undefined) {
    try {
      const script = (JSON.parse(manifest) as { scripts?: { test?: unknown } }).scripts?.test;
      if (typeof script === 'string' && script.trim() !== '') return script;
    } catch {
      throw new ValidationError('repo-tests: input.repo.files.package.json is not JSON', { field: 'input.repo.files' });
    }
  }
  return 'node --test';
}

/** TAP totals printed by `node --test`. */
function tapTotals(output: string): { pass: number; fail: number } | null {
  const pass = /^# pass (\d+)$/m.exec(output);
  const fail = /^# fail (\d+)$/m.exec(output);
  return pass && fail ? { pass: Number(pass[1]), fail: Number(fail[1]) } : null;
}

/**
 * Run `command` in `cwd` under the limits described in the module comment.
 * @throws {CancelledError} when `signal` aborts.
 */
async function runTests(
  cwd: string,
  command: string,
  timeoutMs: number,
  outputMaxChars: number,
  signal: AbortSignal,
): Promise<Pick<TestReport, 'exitCode' | 'signal' | 'timedOut' | 'durationMs' | 'network' | 'output'>> {
  const home = join(cwd, '.home');
  await mkdir(home, { recursive: true });
  const env: Record<string, string> = {
    PATH: `${join(cwd, 'node_modules', '.bin')}:${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    HOME: home,
    TMPDIR: home,
    CI: 'true',
    NODE_ENV: 'test',
  };
  const network: NetworkIsolation = canUnshareNetwork() ? 'namespace' : 'node-guard';
  if (network === 'node-guard') {
    const guard = join(home, 'no-network.cjs');
    await writeFile(guard, NODE_NETWORK_GUARD);
    env['NODE_OPTIONS'] = `--require ${guard}`;
  }
  const [file, args] = network === 'namespace' ? ['unshare', ['--net', '/bin/sh', '-c', command]] : ['/bin/sh', ['-c', command]];
  const started = Date.now();
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > outputMaxChars * 2) output = output.slice(-outputMaxChars);
  };
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let timedOut = false;
    let cancelled = false;
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = (): void => {
      cancelled = true;
      killGroup();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(new AgentError(`repo-tests: could not start ${file}: ${err.message}`));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (cancelled) {
        reject(new CancelledError('repo-tests: the test command was stopped (step cancelled or timed out)'));
        return;
      }
      resolve({
        exitCode: code,
        signal: sig,
        timedOut,
        durationMs: Date.now() - started,
        network,
        output: output.slice(-outputMaxChars),
      });
    });
  });
}

export const repoTestsImplementation: AgentImplementation<RepoTestsConfig> = {
  name: 'repo-tests',
  type: 'tool',
  description: "Merges a code change's patches, lints the changed files, and runs the repository's own tests in a sandboxed child process.",
  config: RepoTestsConfig,
  async run(input: unknown, ctx: AgentContext, config: RepoTestsConfig): Promise<RepoTestsOutput> {
    const request = parseInput(RepoTestsInput, input, 'repo-tests');
    const base = request.repo.files;
    const { files: changedFiles, conflicts } = mergeBuilds(base, request.builds);
    const changed = Object.keys(changedFiles).sort();
    const diff = repoPatch(base, changedFiles);
    const diffAsset = diff === '' ? null : await ctx.assets.saveBuffer(Buffer.from(diff, 'utf8'), { name: 'change.diff', mimeType: 'text/x-diff' });

    let findings: Finding[] = [];
    if (request.lint && changed.length > 0) {
      const call = { files: changedFiles, options: request.lint.options };
      await checkModuleCall(request.lint.module, call);
      const code = await ctx.moduleCode(request.lint.module);
      const raw = await ctx.functions.run(code, call, config.lintLimits, ctx);
      const parsed = LintResult.safeParse(raw);
      if (!parsed.success) throw new AgentError(`${request.lint.module} did not return {findings} (it is not a linter)`);
      findings = parsed.data.findings;
    }

    const merged: RepoFiles = { ...base, ...changedFiles };
    const command = testCommandOf(merged);
    const timeoutMs = Math.min(request.timeoutMs ?? config.timeoutMs, config.maxTimeoutMs);
    const root = await mkdtemp(join(tmpdir(), 'baton-repo-'));
    let run: Awaited<ReturnType<typeof runTests>>;
    try {
      await writeTree(root, merged);
      await ctx.progress(0.5, `running ${command}`);
      run = await runTests(root, command, timeoutMs, config.outputMaxChars, ctx.signal);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    const report: TestReport = {
      passed: run.exitCode === 0 && !run.timedOut && conflicts.length === 0,
      ...run,
      command,
      tests: tapTotals(run.output),
      findings,
      conflicts,
      changed,
    };
    const reportAsset = await ctx.assets.saveBuffer(Buffer.from(JSON.stringify(report, null, 2), 'utf8'), {
      name: 'test-report.json',
      mimeType: 'application/json',
    });
    return { ...report, diff, diffAssetId: diffAsset?.id ?? null, reportAssetId: reportAsset.id };
  },
};
