/**
 * The definitions guard (`npm run definitions:check`, a step of `.ci/run` before the tests; the
 * `baton definitions validate` command calls {@link checkDefinitions}).
 *
 * It checks, and reports every problem as `file:line:column: message`:
 * - every agent catalog entry (`agents/catalog/*.yaml`) and every step module
 *   (`agents/modules/<name>@<version>/`: `module.yaml`, and `main.js` parses as a script);
 * - every definition (`definitions/*.yaml`, or the given paths): the loader's own rules (shape,
 *   `needs`, cycles, expressions, unknown agents…), plus what the loader cannot know:
 *   - a step module that does not exist, or not at that version (`module:` of a function step,
 *     and any `module: name@version` literal inside a step's `with:`, e.g. a codemod or lint
 *     module handed to an agent);
 *   - an orchestrator step's `run: {slug, version}` naming no definition, or no such version;
 * - every definition in `definitions/` has an evaluation fixture: a case in `eval/cases/*.yaml`
 *   whose `definition:` is its slug (see `scripts/eval.ts`).
 *
 * Usage: `tsx scripts/definitions-guard.ts [file.yaml …]`; exit code 1 when anything is reported.
 */
import { mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parse as parseScript } from '@babel/parser';
import { DefinitionError, parseYamlSource, projectRoot, runEntry, type PositionedProblem, type Segment } from '../lib/index.js';
import { loadModules, parseAgentSource, MODULE_REF_PATTERN, type AgentType, type StepModule } from '../agents/index.js';
import { parseDefinition, type Definition } from '../definitions/index.js';

/** One problem: 1-based line and column. */
export interface GuardProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

function positioned(problems: readonly PositionedProblem[], fallbackFile: string): GuardProblem[] {
  return problems.map((p) => ({ file: p.file || fallbackFile, line: p.line ?? 1, column: p.column ?? 1, message: p.message }));
}

/** Problems of a thrown DefinitionError (or one problem at 1:1 for anything else). */
function problemsOf(err: unknown, file: string): GuardProblem[] {
  if (err instanceof DefinitionError) {
    const listed = (err.details as { problems?: PositionedProblem[] } | undefined)?.problems;
    if (listed && listed.length > 0) return positioned(listed, file);
  }
  return [{ file, line: 1, column: 1, message: err instanceof Error ? err.message : String(err) }];
}

async function yamlFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith('.')).sort().map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** Step modules one folder at a time, so one broken module does not hide the others. */
async function checkModules(dir: string): Promise<{ modules: Map<string, StepModule>; problems: GuardProblem[] }> {
  const modules = new Map<string, StepModule>();
  const problems: GuardProblem[] = [];
  let folders: string[] = [];
  try {
    folders = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch {
    return { modules, problems };
  }
  for (const folder of folders) {
    // loadModules reads a directory of module folders: give it one folder at a time.
    const single = await mkdtemp(join(tmpdir(), 'baton-guard-'));
    try {
      await symlink(join(dir, folder), join(single, folder));
      for (const [ref, module] of await loadModules(single)) modules.set(ref, module);
    } catch (err) {
      problems.push(...problemsOf(err, join(dir, folder)).map((p) => ({ ...p, file: p.file.replace(single, dir) })));
      continue;
    } finally {
      await rm(single, { recursive: true, force: true });
    }
    const mainFile = join(dir, folder, 'main.js');
    try {
      parseScript(await readFile(mainFile, 'utf8'), { sourceType: 'script', allowReturnOutsideFunction: false });
    } catch (err) {
      const loc = (err as { loc?: { line: number; column: number } }).loc;
      problems.push({ file: mainFile, line: loc?.line ?? 1, column: (loc?.column ?? 0) + 1, message: `main.js: ${(err as Error).message}` });
    }
  }
  return { modules, problems };
}

/** Every `module: name@version` literal under a step's `with:` (path segments from the document root). */
function moduleLiterals(value: unknown, path: Segment[]): Array<{ ref: string; path: Segment[] }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => moduleLiterals(v, [...path, i]));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, v]) =>
    key === 'module' && typeof v === 'string' && !v.includes('${{') ? [{ ref: v, path: [...path, key] }] : moduleLiterals(v, [...path, key]),
  );
}

function unknownModule(ref: string, modules: ReadonlyMap<string, StepModule>): string | undefined {
  if (modules.has(ref)) return undefined;
  const name = ref.split('@')[0] ?? ref;
  const versions = [...modules.values()].filter((m) => m.name === name).map((m) => m.version).sort((a, b) => a - b);
  if (!MODULE_REF_PATTERN.test(ref)) return `"${ref}" is not a module reference name@version`;
  return versions.length > 0
    ? `unknown version of module ${name}: ${ref} (known: ${versions.map((v) => `${name}@${v}`).join(', ')})`
    : `unknown module ${ref} (known: ${[...modules.keys()].sort().join(', ') || 'none'})`;
}

/** References the loader cannot check: modules and orchestrator targets. */
function checkReferences(
  file: string,
  source: string,
  definition: Definition,
  modules: ReadonlyMap<string, StepModule>,
  versions: ReadonlyMap<string, number[]>,
): GuardProblem[] {
  const yaml = parseYamlSource(source, file);
  const at = (path: Segment[], message: string): GuardProblem => ({ file, ...yaml.positionOf(path), message });
  const problems: GuardProblem[] = [];
  definition.steps.forEach((step, i) => {
    if (step.kind === 'function-code' && step.module !== undefined) {
      const problem = unknownModule(step.module, modules);
      if (problem) problems.push(at(['steps', i, 'module'], `step ${step.id}: ${problem}`));
    }
    for (const literal of moduleLiterals(step.with, ['steps', i, 'with'])) {
      const problem = unknownModule(literal.ref, modules);
      if (problem) problems.push(at(literal.path, `step ${step.id}: ${problem}`));
    }
    if (step.kind === 'orchestrator') {
      const known = versions.get(step.run.slug);
      if (!known) problems.push(at(['steps', i, 'run', 'slug'], `step ${step.id}: runs unknown definition "${step.run.slug}"`));
      else if (step.run.version !== undefined && !known.includes(step.run.version)) {
        problems.push(at(['steps', i, 'run', 'version'], `step ${step.id}: definition ${step.run.slug} has no version ${step.run.version} (known: ${known.join(', ')})`));
      }
    }
  });
  return problems;
}

/** Slugs with an evaluation case (`definition:` of `eval/cases/*.yaml`). */
async function evaluatedSlugs(root: string): Promise<Set<string>> {
  const slugs = new Set<string>();
  for (const file of await yamlFiles(join(root, 'eval', 'cases'))) {
    const value = parseYamlSource(await readFile(file, 'utf8'), file).value as { definition?: unknown } | null;
    if (value && typeof value.definition === 'string') slugs.add(value.definition);
  }
  return slugs;
}

/**
 * Run the guard.
 * @param paths - definition files to check (default: every `definitions/*.yaml`); the catalog and
 *   the modules are always checked, and the evaluation-fixture rule applies to files of the
 *   project's `definitions/` folder only.
 * @returns every problem, sorted by file, line and column (empty: all good); files inside the
 *   project are relative to its root.
 */
export async function checkDefinitions(paths?: string[]): Promise<GuardProblem[]> {
  const root = projectRoot();
  const problems: GuardProblem[] = [];

  const agentTypes = new Map<string, AgentType>();
  const catalogDir = join(root, 'agents', 'catalog');
  for (const file of await yamlFiles(catalogDir)) {
    try {
      const spec = parseAgentSource(await readFile(file, 'utf8'), file);
      agentTypes.set(spec.name, spec.type);
    } catch (err) {
      problems.push(...problemsOf(err, file));
    }
  }
  const checked = await checkModules(join(root, 'agents', 'modules'));
  problems.push(...checked.problems);

  const definitionsDir = join(root, 'definitions');
  const projectFiles = await yamlFiles(definitionsDir);
  const files = paths && paths.length > 0 ? paths.map((p) => resolve(p)) : projectFiles;
  const parsed: Array<{ file: string; source: string; definition: Definition }> = [];
  const versions = new Map<string, number[]>();
  // Every project definition is a possible orchestrator target, checked or not.
  for (const file of [...new Set([...projectFiles, ...files])]) {
    let source: string;
    try {
      source = await readFile(file, 'utf8');
    } catch (err) {
      problems.push({ file, line: 1, column: 1, message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    try {
      const definition = parseDefinition(source, { file, agents: agentTypes });
      versions.set(definition.slug, [...(versions.get(definition.slug) ?? []), definition.version].sort((a, b) => a - b));
      if (files.includes(file)) parsed.push({ file, source, definition });
    } catch (err) {
      if (files.includes(file)) problems.push(...problemsOf(err, file));
    }
  }
  const evaluated = await evaluatedSlugs(root);
  for (const { file, source, definition } of parsed) {
    problems.push(...checkReferences(file, source, definition, checked.modules, versions));
    const inProject = !relative(definitionsDir, file).startsWith('..') && !relative(definitionsDir, file).includes('/');
    if (inProject && !evaluated.has(definition.slug)) {
      const { line, column } = parseYamlSource(source, file).positionOf(['slug']);
      problems.push({ file, line, column, message: `definition ${definition.slug} has no evaluation fixture (a case in eval/cases/ with definition: ${definition.slug})` });
    }
  }
  const shown = (file: string): string => (relative(root, file).startsWith('..') ? file : relative(root, file));
  return problems.map((p) => ({ ...p, file: shown(p.file) })).sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
}

/** `file:line:column: message`, one per line. */
export function formatProblems(problems: readonly GuardProblem[]): string {
  return problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`).join('\n');
}

/** The command: print every problem and exit 1, or say all is valid. */
async function main(): Promise<number> {
  const problems = await checkDefinitions(process.argv.slice(2));
  if (problems.length > 0) {
    process.stderr.write(`${formatProblems(problems)}\n${problems.length} problem(s)\n`);
    return 1;
  }
  process.stdout.write('definitions guard: every definition, agent and module is valid and every definition has an evaluation fixture\n');
  return 0;
}

if (process.argv[1] && /definitions-guard\.(ts|js)$/.test(process.argv[1])) runEntry(process, 'definitions guard', main, { exitOnSuccess: true });
