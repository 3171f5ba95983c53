/**
 * `baton definitions validate`: every problem of the given definition files as
 * `{file, line, column, message}`, over the definition loader (the same rules as `release` and
 * `POST /v1/definitions`). One function, so a stricter guard can replace it.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAgentCatalogEntries } from '../agents/index.js';
import { parseDefinition, type DefinitionProblem } from '../definitions/index.js';
import { DefinitionError, projectRoot } from '../lib/index.js';

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
 * Check definition files against the loader, with the agents of `agents/catalog/` as the known agents.
 * @returns every problem found (empty when all files are valid).
 */
export async function checkDefinitions(paths: readonly string[]): Promise<DefinitionCheck[]> {
  const agents = new Map((await loadAgentCatalogEntries()).map((e) => [e.spec.name, e.spec.type] as const));
  const problems: DefinitionCheck[] = [];
  for (const file of await definitionFiles(paths)) {
    try {
      parseDefinition(await readFile(file, 'utf8'), { file, agents });
    } catch (err) {
      if (!(err instanceof DefinitionError)) throw err;
      const listed = (err.details?.['problems'] as DefinitionProblem[] | undefined) ?? [];
      if (listed.length === 0) problems.push({ file, line: 1, column: 1, message: err.message });
      for (const p of listed) problems.push({ file: p.file || file, line: p.line ?? 1, column: p.column ?? 1, message: p.message });
    }
  }
  return problems;
}
