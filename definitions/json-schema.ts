/**
 * JSON Schemas inside definitions (`input:`, a checkpoint's `modify:`): compile checks at load
 * time and run-input validation.
 *
 * Schemas are compiled with `new Ajv({allErrors: true, strict: false})` (draft-07) plus
 * ajv-formats (`date`, `uri`, `email`, …); `pattern` and `patternProperties` regexes run on the
 * linear-time engine (`lib/linear-regexp.ts`), and one it cannot run makes the schema invalid.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ajvLinearRegExp, LinearRegExpError, ValidationError } from '../lib/index.js';
import type { Definition } from './schema.js';

// ajv-formats is CommonJS; under NodeNext its callable export is `.default`.
const addFormats = addFormatsModule.default;

/** A fresh Ajv instance (one per schema, so `$id`s of different definitions never clash). */
function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, code: { regExp: ajvLinearRegExp } });
  addFormats(ajv);
  return ajv;
}

/** Decode a JSON Pointer (`/properties/a~1b`) into path segments. */
function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Why a JSON Schema is unusable, and where inside the schema (path segments). */
export interface SchemaProblem {
  path: Array<string | number>;
  message: string;
}

/**
 * Check that `schema` is a valid JSON Schema that Ajv can compile.
 * @returns the compiled validator, or the first problem (with its path inside the schema).
 */
export function compileJsonSchema(
  schema: Record<string, unknown>,
): { ok: true; validate: ValidateFunction } | { ok: false; problem: SchemaProblem } {
  const ajv = createAjv();
  try {
    const valid = ajv.validateSchema(schema);
    if (valid !== true) {
      const [first] = ajv.errors ?? [];
      if (first) {
        const path = pointerSegments(first.instancePath);
        const where = path.length === 0 ? '' : `${path.join('.')} `;
        return { ok: false, problem: { path, message: `is not a valid JSON Schema: ${where}${first.message ?? 'is invalid'}` } };
      }
    }
    return { ok: true, validate: ajv.compile(schema) };
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err);
    const path = err instanceof LinearRegExpError ? (patternPath(schema, err.source) ?? []) : [];
    return { ok: false, problem: { path, message: `is not a valid JSON Schema: ${message}` } };
  }
}

/**
 * Path inside `schema` of the `pattern` (or `patternProperties` key) whose text is `source`,
 * found by an iterative walk, or `undefined`.
 */
function patternPath(schema: unknown, source: string): Array<string | number> | undefined {
  const pending: Array<{ node: unknown; path: Array<string | number> }> = [{ node: schema, path: [] }];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === undefined || typeof next.node !== 'object' || next.node === null) continue;
    for (const [key, value] of Object.entries(next.node)) {
      const path = [...next.path, Array.isArray(next.node) ? Number(key) : key];
      if (key === 'pattern' && value === source) return path;
      if (key === 'patternProperties' && typeof value === 'object' && value !== null && source in value) return [...path, source];
      pending.push({ node: value, path });
    }
  }
  return undefined;
}

/** Compiled `input` validators, one per definition object. */
const inputValidators = new WeakMap<Definition, ValidateFunction>();

/**
 * Remember the compiled `input` validator of a definition (done by the loader, so that
 * {@link validateInput} does not compile again).
 */
export function rememberInputValidator(definition: Definition, validate: ValidateFunction): void {
  inputValidators.set(definition, validate);
}

/** Dotted field of an Ajv error, rooted at `root` (`input.symbols.0`, `input.to`). */
function fieldOf(error: ErrorObject, root: string): string {
  const segments = pointerSegments(error.instancePath);
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required' && typeof params['missingProperty'] === 'string') {
    segments.push(params['missingProperty']);
  } else if (error.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
    segments.push(params['additionalProperty']);
  }
  return [root, ...segments].join('.');
}

/** Reason of an Ajv error, relative to {@link fieldOf}. */
function reasonOf(error: ErrorObject): string {
  if (error.keyword === 'required') return 'is required';
  if (error.keyword === 'additionalProperties') return 'is not allowed (unknown property)';
  return error.message ?? 'is invalid';
}

/**
 * Validate a run input against the definition's `input` JSON Schema (compiled once per
 * definition object).
 * @throws {ValidationError} listing every problem as `<field>: <reason>` joined by `; `, e.g.
 *   `input.from: must match format "date"` or `input.to: is required`; `field` is the first
 *   problem's dotted path (`input.from`, `input.symbols.0`, `input.to`) and
 *   `details.errors` lists `{field, message}` for all of them.
 * @throws {ValidationError} (field `input`) if the definition's schema itself does not compile
 *   (only possible for definitions not produced by the loader).
 */
export function validateInput(definition: Definition, input: unknown): void {
  let validate = inputValidators.get(definition);
  if (!validate) {
    const compiled = compileJsonSchema(definition.input);
    if (!compiled.ok) {
      throw new ValidationError(`input schema of ${definition.slug}@${definition.version} ${compiled.problem.message}`, {
        field: 'input',
      });
    }
    validate = compiled.validate;
    inputValidators.set(definition, validate);
  }
  reportProblems(validate, input, 'input');
}

/**
 * Run a compiled validator; on failure throw a {@link ValidationError} listing every problem as
 * `<field>: <reason>`, with `field` = the first problem's dotted path under `root`.
 */
function reportProblems(validate: ValidateFunction, value: unknown, root: string): void {
  if (validate(value)) return;
  const seen = new Set<string>();
  const errors: Array<{ field: string; message: string }> = [];
  for (const error of validate.errors ?? []) {
    const field = fieldOf(error, root);
    const message = `${field}: ${reasonOf(error)}`;
    if (seen.has(message)) continue;
    seen.add(message);
    errors.push({ field, message });
  }
  const first = errors[0] ?? { field: root, message: `${root}: is invalid` };
  throw new ValidationError(errors.map((e) => e.message).join('; ') || first.message, {
    field: first.field,
    details: { errors },
  });
}

/** Compiled validators of schemas stored outside definitions objects, by their JSON text. */
const schemaValidators = new Map<string, ValidateFunction>();
const SCHEMA_CACHE_LIMIT = 500;

/**
 * Validate `value` against a JSON Schema (e.g. a checkpoint's `modify`), compiling it once.
 * @param root - name of the value in messages and `field` (e.g. `input` → `input.limit`).
 * @throws {ValidationError} as {@link validateInput} does, rooted at `root`.
 */
export function validateAgainstSchema(schema: Record<string, unknown>, value: unknown, root: string): void {
  const key = JSON.stringify(schema);
  let validate = schemaValidators.get(key);
  if (!validate) {
    const compiled = compileJsonSchema(schema);
    if (!compiled.ok) throw new ValidationError(`${root}: the schema ${compiled.problem.message}`, { field: root });
    validate = compiled.validate;
    if (schemaValidators.size >= SCHEMA_CACHE_LIMIT) schemaValidators.clear();
    schemaValidators.set(key, validate);
  }
  reportProblems(validate, value, root);
}
