/**
 * `baton definitions validate`: every problem of the given definition files as
 * `{file, line, column, message}`, from the definitions guard.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../lib/index.js';
import { checkDefinitions as checkWithGuard } from '../scripts/definitions-guard.js';

/** One problem of a definition file; `line`/`column` are 1-based (1:1 when unknown). */
export interface DefinitionCheck {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** The YAML files named by `paths` (a directory stands for its `*.yaml`/`*.yml` files); default `definitions/`. */
export async function definitionFiles(paths: readonly string[]): Promise<string[]> {
  const roots = paths.length > 0 ? paths : [join(projectRoot(), 'definitions')];
  const files: string[] = [];
  for (const path of roots) {
    if ((await stat(path)).isDirectory()) {
      const names = (await readdir(path)).filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith('.')).sort();
      files.push(...names.map((n) => join(path, n)));
    } else {
      files.push(path);
    }
  }
  return files;
}

/**
 * Check definition files with the definitions guard (`scripts/definitions-guard.ts`, the same
 * check `.ci/run` runs): the loader's rules, the agent catalog, step modules and their versions,
 * orchestrator targets.
 * @returns every problem found (empty when all files are valid).
 */
export async function checkDefinitions(paths: readonly string[]): Promise<DefinitionCheck[]> {
  return checkWithGuard(await definitionFiles(paths));
}
