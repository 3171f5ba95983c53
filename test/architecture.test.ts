/**
 * The layering conventions, checked mechanically over the source (research/aesthetics.md §3.2):
 * who may import whom, the only reader of `process.env`, the only files that touch process
 * signals and exit, and no `any`.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../lib/index.js';

const ROOT = projectRoot();
/** Production folders, most specific first. */
const MODULES = ['services/engine', 'services/store', 'services/api', 'lib', 'db', 'queues', 'definitions', 'agents', 'workers', 'cli'] as const;
type Module = (typeof MODULES)[number];

/** What each module may import (besides itself). `agents/types` only as `import type`. */
const ALLOWED: Record<Module, readonly string[]> = {
  lib: [],
  db: ['lib'],
  queues: ['lib'],
  definitions: ['lib', 'agents/types'],
  agents: ['lib'],
  /**
   * Read models and CRUD outside the run lifecycle: run, event and approval listings, stored
   * definitions, agents, secrets, assets, deliverables, API keys, integrations. Never the engine.
   */
  'services/store': ['lib', 'db', 'definitions', 'agents/types'],
  'services/engine': ['lib', 'db', 'queues', 'definitions', 'services/store', 'agents/types'],
  'services/api': ['lib', 'db', 'queues', 'definitions', 'services/engine', 'services/store', 'agents/types'],
  workers: ['lib', 'db', 'queues', 'definitions', 'agents', 'services/engine', 'services/store'],
  /** The `baton` CLI: a composition root over everything (cli/dev.ts runs the API and the workers). */
  cli: ['lib', 'db', 'queues', 'definitions', 'agents', 'services/engine', 'services/store', 'services/api', 'workers'],
};

/** Composition roots: they build concrete clients, may import registries, and own the process. */
const ENTRY_FILES = new Set(['services/api/main.ts', 'workers/main.ts', 'cli/main.ts']);
/** Entry files, and `cli/dev.ts` (web and workers in one process): they may import what they compose. */
const COMPOSITION_ROOTS = new Set([...ENTRY_FILES, 'cli/dev.ts']);
/** Command entries (`npm run …`): they own the process too, but are outside the layering table. */
const SCRIPT_ENTRIES = new Set(['scripts/release.ts', 'scripts/reconcile.ts', 'scripts/demo.ts', 'scripts/bench.ts', 'scripts/chaos.ts', 'scripts/bench-raw-worker.ts', 'scripts/eval.ts', 'scripts/definitions-guard.ts']);
/** The one signal-handler installer and exit path; entries hand it `process`. */
const SHUTDOWN_FILE = 'lib/shutdown.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === '__fixtures__' ? [] : sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') && !/\/test-[a-z-]+\.ts$/.test(path) ? [path] : [];
  });
}

function moduleOf(file: string): Module | undefined {
  const rel = relative(ROOT, file);
  return MODULES.find((m) => rel === m || rel.startsWith(`${m}/`));
}

const files = [...new Set(MODULES.flatMap((m) => sourceFiles(join(ROOT, m))))];
const scriptFiles = sourceFiles(join(ROOT, 'scripts'));

/** A file's code without comments (so prose in TSDoc is not mistaken for code). */
function codeOf(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1');
}

interface ImportSite {
  file: string;
  target: string;
  typeOnly: boolean;
}

function importsOf(file: string): ImportSite[] {
  const text = readFileSync(file, 'utf8');
  const sites: ImportSite[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.{1,2}\/[^']+)'/gm)) {
    const target = resolve(dirname(file), m[2] ?? '').replace(/\.js$/, '.ts');
    sites.push({ file, target, typeOnly: Boolean(m[1]) });
  }
  return sites;
}

describe('architecture', function () {
  it('finds the source it checks', function () {
    expect(files.length).to.be.greaterThan(40);
  });

  it('keeps every import within the allowed layers', function () {
    const violations: string[] = [];
    for (const file of files) {
      const from = moduleOf(file);
      if (!from) continue;
      const rel = relative(ROOT, file);
      for (const site of importsOf(file)) {
        const to = moduleOf(site.target);
        const targetRel = relative(ROOT, site.target);
        if (!to || to === from) continue;
        const allowed = ALLOWED[from];
        if (targetRel === 'agents/types.ts' && allowed.includes('agents/types')) {
          if (!site.typeOnly) violations.push(`${rel} imports agents/types.ts without "import type"`);
          continue;
        }
        if (COMPOSITION_ROOTS.has(rel) && to === 'agents') continue;
        if (!allowed.includes(to)) violations.push(`${rel} imports ${targetRel} (${from} may import ${allowed.join(', ') || 'nothing'})`);
      }
    }
    expect(violations).to.deep.equal([]);
  });

  it('imports other layers through their index, never deep', function () {
    const deep: string[] = [];
    for (const file of files) {
      const from = moduleOf(file);
      for (const site of importsOf(file)) {
        const to = moduleOf(site.target);
        const targetRel = relative(ROOT, site.target);
        if (!to || to === from || targetRel === 'agents/types.ts' || targetRel === 'lib/logger.ts') continue;
        const isIndex = targetRel === `${to}/index.ts`;
        // services/api/main.ts and the test-support stack are composition roots.
        if (!isIndex && !COMPOSITION_ROOTS.has(relative(ROOT, file))) deep.push(`${relative(ROOT, file)} → ${targetRel}`);
      }
    }
    expect(deep).to.deep.equal([]);
  });

  it('reads process.env only in lib/config.ts, and touches signals and exit only in entry files', function () {
    const env: string[] = [];
    const proc: string[] = [];
    for (const file of files) {
      const rel = relative(ROOT, file);
      const code = codeOf(file);
      if (/process\.env\b/.test(code) && rel !== 'lib/config.ts') env.push(rel);
      if (/process\.(on|once|exit)\(/.test(code) && !ENTRY_FILES.has(rel)) proc.push(rel);
    }
    expect(env, 'process.env readers').to.deep.equal([]);
    expect(proc, 'process.on/exit outside entry files').to.deep.equal([]);
  });

  it('installs signal handlers and exits only through lib/shutdown.ts, handed `process` by entry files', function () {
    const direct: string[] = [];
    const handedOver: string[] = [];
    const withoutRunEntry: string[] = [];
    for (const file of [...files, ...scriptFiles]) {
      const rel = relative(ROOT, file);
      const code = codeOf(file);
      // Nobody calls them directly: entries, too, go through the one installer and exit path.
      if (/\bprocess\.(on|once|off|exit)\(|\bprocess\.exitCode\b/.test(code)) direct.push(rel);
      const isEntry = ENTRY_FILES.has(rel) || SCRIPT_ENTRIES.has(rel);
      if (/\(\s*process\s*[,)]/.test(code) && !isEntry) handedOver.push(rel);
      if (isEntry && !/\brunEntry\(\s*process\s*,/.test(code)) withoutRunEntry.push(rel);
    }
    expect(direct, 'files calling process.on/once/off/exit themselves').to.deep.equal([]);
    expect(handedOver, 'non-entry files passing `process` on').to.deep.equal([]);
    expect(withoutRunEntry, 'entries not ending through runEntry').to.deep.equal([]);
    const shutdown = codeOf(join(ROOT, SHUTDOWN_FILE));
    expect(shutdown, `${SHUTDOWN_FILE} reaches for the global process`).not.to.match(/\bprocess\./);
    expect(shutdown).to.match(/host\.on\('SIGTERM'/);
    for (const entry of ['services/api/main.ts', 'workers/main.ts']) {
      expect(codeOf(join(ROOT, entry)), entry).to.match(/\binstallSignalHandlers\(\s*process\s*,/);
    }
  });

  it('has no `any` in production code', function () {
    const found = files.filter((file) => /(:\s*any\b|\bas any\b|<any>)/.test(codeOf(file)));
    expect(found.map((f) => relative(ROOT, f))).to.deep.equal([]);
  });
});
