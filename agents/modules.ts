/**
 * Step modules: versioned function code shared by `type: function` steps (`module: name@version`)
 * and function agents (`config.module`).
 *
 * On disk: `agents/modules/<name>@<version>/module.yaml` (`name`, `version`, `description`,
 * `input`: the JSON Schema of `main`'s input) and `main.js` (a plain script defining
 * `function main(input, ctx)`, possibly `async`). The folder name must be `name@version`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { assertMatchesSchema, compileSchema, type JsonSchema } from './json-schema.js';
import { parseYamlSource, problemsError, projectRoot, sourceError, ValidationError, zodProblems } from '../lib/index.js';

/** `name@version`: a kebab-case name and a positive integer version. */
export const MODULE_REF_PATTERN = /^([a-z][a-z0-9-]*)@([1-9][0-9]{0,8})$/;

/** One loaded step module. */
export interface StepModule {
  /** `name@version`, e.g. `kpi-metrics@1`. */
  ref: string;
  name: string;
  version: number;
  description: string;
  /** JSON Schema of `main`'s input. */
  input: JsonSchema;
  /** The source of `main.js`. */
  code: string;
}

/** The default module directory: `<projectRoot>/agents/modules`. */
export function defaultModulesDir(): string {
  return join(projectRoot(), 'agents', 'modules');
}

/**
 * Split a module reference.
 * @param text - e.g. `kpi-metrics@1`.
 * @returns its name and version.
 * @throws {ValidationError} (field `module`) when `text` is not `name@version`.
 */
export function parseModuleRef(text: string): { name: string; version: number } {
  const match = MODULE_REF_PATTERN.exec(text);
  if (!match?.[1] || !match[2]) {
    throw new ValidationError(`module: expected name@version (e.g. kpi-metrics@1), got ${JSON.stringify(text)}`, { field: 'module' });
  }
  return { name: match[1], version: Number(match[2]) };
}

const ModuleDocument = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, { error: 'expected a kebab-case name' }),
    version: z.number().int().positive(),
    description: z.string().min(1).max(2000),
    input: z.record(z.string(), z.unknown()),
  })
  .strict();

/** Whether a script defines a top-level `main` function (`function main(` or `async function main(`). */
function definesMain(code: string): boolean {
  return /(^|\n)\s*(async\s+)?function\s+main\s*\(/.test(code);
}

/**
 * Load one module folder.
 * @throws {DefinitionError} `<dir>/module.yaml:line:column: …` for an invalid `module.yaml`
 *   (shape, a folder name that is not its `name@version`, an input schema that does not
 *   compile), or `<dir>/main.js: …` when `main.js` is missing or defines no `main`.
 */
async function loadModule(dir: string, folder: string): Promise<StepModule> {
  const file = join(dir, folder, 'module.yaml');
  const source = parseYamlSource(await readFile(file, 'utf8'), file);
  const parsed = ModuleDocument.safeParse(source.value);
  if (!parsed.success) throw sourceError(file, source, zodProblems(parsed.error.issues, source.value));
  const doc = parsed.data;
  const ref = `${doc.name}@${doc.version}`;
  if (folder !== ref) throw sourceError(file, source, [{ path: ['name'], message: `the folder must be named ${ref} (it is ${folder})` }]);
  try {
    compileSchema(doc.input, 'input');
  } catch (err) {
    throw sourceError(file, source, [{ path: ['input'], message: err instanceof Error ? err.message : String(err) }]);
  }
  const mainFile = join(dir, folder, 'main.js');
  let code: string;
  try {
    code = await readFile(mainFile, 'utf8');
  } catch {
    throw problemsError([{ file: mainFile, path: '', message: 'missing main.js' }]);
  }
  if (!definesMain(code)) throw problemsError([{ file: mainFile, path: '', message: 'main.js must define function main(input, ctx)' }]);
  return { ref, name: doc.name, version: doc.version, description: doc.description, input: doc.input, code };
}

/**
 * Load every module folder directly in `dir` (dot-folders skipped), in name order.
 * @param dir - default {@link defaultModulesDir}.
 * @returns modules by `ref`.
 * @throws {DefinitionError} for the first invalid module (see {@link loadModule}), or a folder
 *   whose name is not `name@version`.
 */
export async function loadModules(dir: string = defaultModulesDir()): Promise<ReadonlyMap<string, StepModule>> {
  const folders = (await readdir(dir)).filter((name) => !name.startsWith('.')).sort();
  const modules = new Map<string, StepModule>();
  for (const folder of folders) {
    if (!(await stat(join(dir, folder))).isDirectory()) continue;
    if (!MODULE_REF_PATTERN.test(folder)) {
      throw problemsError([{ file: join(dir, folder), path: '', message: 'module folders are named name@version (e.g. kpi-metrics@1)' }]);
    }
    const module = await loadModule(dir, folder);
    modules.set(module.ref, module);
  }
  return modules;
}

/**
 * A `ctx.moduleCode` for a set of loaded modules.
 * @returns a resolver that throws {@link ValidationError} (field `module`) for a malformed or
 *   unknown reference (the message lists the known ones).
 */
export function moduleCodeResolver(modules: ReadonlyMap<string, StepModule>): (ref: string) => Promise<string> {
  return (ref) => {
    try {
      parseModuleRef(ref);
      const module = modules.get(ref);
      if (!module) {
        throw new ValidationError(`module: unknown module ${ref} (known: ${[...modules.keys()].sort().join(', ') || 'none'})`, {
          field: 'module',
        });
      }
      return Promise.resolve(module.code);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

/**
 * Check a step input against a module's `input` schema.
 * @throws {ValidationError} naming the first failing field (e.g. `input.prices.0.price`).
 */
export function validateModuleInput(module: StepModule, input: unknown): void {
  assertMatchesSchema(module.input, input, 'input');
}
