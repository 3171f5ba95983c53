/**
 * Loading definitions: YAML (or JSON) → validated {@link Definition}.
 *
 * Validation happens in two passes (`rules.ts`): the zod schema checks the document's shape (see
 * `schema.ts`, messages from `problems.ts`); if that passes, cross-field rules are checked
 * (duplicate ids, unknown `needs`, cycles, unknown agents, expressions and their `steps.<id>`
 * references, checkpoint rules, JSON Schemas). Every problem is reported with the position of the
 * offending YAML node (`file:line:column`), or with its JSON path for JSON bodies; parsing,
 * positions and the error format are `lib/yaml-source.ts`'s, shared with the agent catalog and the
 * step modules. The `needs` graph helpers are in `graph.ts`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { blockSequenceLength, DefinitionTooLargeError, parseYamlSource, problemsError, sourceError, type PositionedProblem } from '../lib/index.js';
import { definitionLimits } from './limits.js';
import type { AgentType } from '../agents/types.js';
import { rememberInputValidator } from './json-schema.js';
import { validateDocument, type DefinitionLoadOptions } from './rules.js';
import type { Definition } from './schema.js';

export type { DefinitionLoadOptions } from './rules.js';

/**
 * One problem found while loading a definition (all of them are in
 * `DefinitionError.details.problems`): `file`, 1-based `line` and `column` of the offending YAML
 * node (absent for JSON bodies), its JSON `path` (e.g. `steps[1].needs[0]`, `''` for the
 * document) and the broken rule as `message` (e.g. `step kpis: needs unknown step "lod"`).
 */
export type DefinitionProblem = PositionedProblem;

/** Refuse a source larger than `DEFINITION_MAX_BYTES` (413). */
function checkBytes(bytes: number, file: string): void {
  const { maxBytes } = definitionLimits();
  if (bytes > maxBytes) {
    throw new DefinitionTooLargeError(`${file}: the definition is ${bytes} bytes; at most ${maxBytes} bytes (DEFINITION_MAX_BYTES) are allowed`, {
      field: 'body',
      details: { bytes, maxBytes },
    });
  }
}

/**
 * Refuse, before parsing, a YAML definition that is too large or has too many steps (counted
 * from lexer tokens, see `blockSequenceLength`): cheap checks that keep a huge document from
 * being parsed at all.
 * @throws {DefinitionTooLargeError} (413 `DEFINITION_TOO_LARGE`, field `body`) past
 *   `DEFINITION_MAX_BYTES`.
 * @throws {DefinitionError} (400 `DEFINITION_INVALID` at `steps`) past `DEFINITION_MAX_STEPS`.
 */
export function checkDefinitionSource(source: string, file: string): void {
  checkBytes(Buffer.byteLength(source, 'utf8'), file);
  const { maxSteps } = definitionLimits();
  const steps = blockSequenceLength(source, 'steps');
  if (steps !== undefined && steps > maxSteps) {
    throw problemsError([{ file, path: 'steps', message: `the definition has ${steps} steps; at most ${maxSteps} (DEFINITION_MAX_STEPS) are allowed` }]);
  }
}

/** Parse YAML and validate; also returns the position of `slug` (for duplicate checks). */
function parseYamlDefinition(
  source: string,
  options: DefinitionLoadOptions,
): { definition: Definition; slugLine: number; slugColumn: number } {
  checkDefinitionSource(source, options.file);
  const yaml = parseYamlSource(source, options.file);
  const built = validateDocument(yaml.value, options);
  if (!built.ok) throw sourceError(options.file, yaml, built.problems);
  rememberInputValidator(built.definition, built.inputValidator);
  const slug = yaml.positionOf(['slug']);
  return { definition: built.definition, slugLine: slug.line, slugColumn: slug.column };
}

/**
 * Parse and validate one YAML definition.
 * @param source - the YAML text (one document).
 * @param options.file - path or label used in messages and stored as `Definition.file`.
 * @param options.agents - known agents (name → type).
 * @returns the validated definition (durations in milliseconds, defaults applied, `when`
 *   stripped of `${{ }}`, `output` defaulted to the leaf steps' outputs).
 * @throws {DefinitionError} with message `<file>:<line>:<column>: <rule>` (1-based, the first
 *   problem in document order leads; up to five are listed, joined by `; `) and
 *   `details.problems`: every {@link DefinitionProblem}. YAML syntax errors are reported the same
 *   way.
 * @throws {DefinitionTooLargeError} past `DEFINITION_MAX_BYTES` (see {@link checkDefinitionSource}).
 */
export function parseDefinition(source: string, options: DefinitionLoadOptions): Definition {
  return parseYamlDefinition(source, options).definition;
}

/**
 * Validate a definition given as a parsed JSON value (e.g. an API request body). Same rules as
 * {@link parseDefinition}.
 * @throws {DefinitionError} with message `<file>: <json path>: <rule>` (e.g.
 *   `body: steps[1].needs[0]: step kpis: needs unknown step "lod" (…)`), `details.problems` as for
 *   YAML but without `line`/`column`.
 */
export function parseDefinitionObject(value: unknown, options: DefinitionLoadOptions): Definition {
  const { file } = options;
  checkBytes(Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8'), file);
  let raw: unknown;
  try {
    raw = structuredClone(value);
  } catch {
    throw problemsError([{ file, path: '', message: 'the definition must be plain JSON data' }]);
  }
  const built = validateDocument(raw, options);
  if (!built.ok) {
    throw sourceError(file, undefined, built.problems);
  }
  rememberInputValidator(built.definition, built.inputValidator);
  return built.definition;
}

/**
 * Load every `*.yaml` / `*.yml` file directly in `dir` (not subdirectories, not dot-files),
 * in file-name order.
 * @returns the definitions in file-name order.
 * @throws {DefinitionError} for the first invalid file (message starts with its path, as
 *   `join(dir, name)`), or when two files define the same `slug` and `version`.
 */
export async function loadDefinitionsDir(dir: string, agents: ReadonlyMap<string, AgentType>): Promise<Definition[]> {
  const names = (await readdir(dir))
    .filter((name) => /\.ya?ml$/i.test(name) && !name.startsWith('.'))
    .sort();
  const definitions: Definition[] = [];
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    if (!(await stat(file)).isFile()) continue;
    const source = await readFile(file, 'utf8');
    const { definition, slugLine, slugColumn } = parseYamlDefinition(source, { file, agents });
    const key = `${definition.slug}@${definition.version}`;
    const other = seen.get(key);
    if (other !== undefined) {
      throw problemsError([
        { file, line: slugLine, column: slugColumn, path: 'slug', message: `duplicate definition ${key} (also defined in ${other})` },
      ]);
    }
    seen.set(key, file);
    definitions.push(definition);
  }
  return definitions;
}
