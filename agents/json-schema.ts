/**
 * JSON Schema validation for agents (step `schema:` of `llm`, `params:` of `sql` statements,
 * module `input:` schemas), with ajv (draft-07, `allErrors`, non-strict) plus ajv-formats;
 * `pattern` regexes run on the linear-time engine (`lib/linear-regexp.ts`).
 *
 * Compiled validators are cached by the schema's JSON text (at most {@link MAX_CACHED_SCHEMAS},
 * oldest first out), so a statement or step schema is compiled once per process.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ajvLinearRegExp, ValidationError } from '../lib/index.js';

// ajv-formats is CommonJS; under NodeNext its callable export is `.default`.
const addFormats = addFormatsModule.default;

/** Compiled schemas kept per process. */
const MAX_CACHED_SCHEMAS = 200;
/** At most this many schema violations are listed in one message. */
const MAX_LISTED_ERRORS = 3;

const cache = new Map<string, ValidateFunction>();

/** A JSON Schema as agents accept it: a JSON object (booleans are not accepted). */
export type JsonSchema = Record<string, unknown>;

/**
 * Compile `schema` (cached).
 * @param schema - a JSON Schema object.
 * @param field - field named by the error (e.g. `schema`, `config.statements.symbols.params`).
 * @returns the ajv validator.
 * @throws {ValidationError} with `field` when ajv cannot compile the schema.
 */
export function compileSchema(schema: JsonSchema, field: string): ValidateFunction {
  const key = JSON.stringify(schema);
  const cached = cache.get(key);
  if (cached) return cached;
  const ajv = new Ajv({ allErrors: true, strict: false, code: { regExp: ajvLinearRegExp } });
  addFormats(ajv);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ValidationError(`${field}: not a valid JSON Schema: ${message}`, { field, cause: err });
  }
  cache.set(key, validate);
  while (cache.size > MAX_CACHED_SCHEMAS) {
    const oldest = cache.keys().next().value;
    if (oldest === undefined) break;
    cache.delete(oldest);
  }
  return validate;
}

/** `/a/0/b` → `a.0.b` (JSON Pointer to a dotted path). */
function dotted(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

/**
 * The field and message of ajv errors: `prefix.path: message` for up to three errors.
 * @param errors - `validate.errors`.
 * @param prefix - root field name (e.g. `params`, `json`).
 */
export function describeSchemaErrors(
  errors: readonly ErrorObject[] | null | undefined,
  prefix: string,
): { field: string; message: string } {
  const list = errors ?? [];
  const describe = (error: ErrorObject): { field: string; text: string } => {
    const missing = error.keyword === 'required' ? (error.params as { missingProperty?: string }).missingProperty ?? '' : '';
    const extra =
      error.keyword === 'additionalProperties'
        ? (error.params as { additionalProperty?: string }).additionalProperty ?? ''
        : '';
    const path = [dotted(error.instancePath), missing || extra].filter((part) => part !== '').join('.');
    const field = path === '' ? prefix : `${prefix}.${path}`;
    return { field, text: `${field}: ${error.message ?? 'is invalid'}${extra ? ' (unknown property)' : ''}` };
  };
  const described = list.slice(0, MAX_LISTED_ERRORS).map(describe);
  const more = list.length > MAX_LISTED_ERRORS ? ` (and ${list.length - MAX_LISTED_ERRORS} more)` : '';
  return {
    field: described[0]?.field ?? prefix,
    message: described.length > 0 ? described.map((d) => d.text).join('; ') + more : `${prefix}: is invalid`,
  };
}

/**
 * Validate `value` against `schema`.
 * @param schema - JSON Schema object.
 * @param value - the value to check.
 * @param field - root field name for messages (e.g. `params`).
 * @throws {ValidationError} naming the first failing field (e.g. `params.symbols.0`), or the
 *   schema's own field when it does not compile.
 */
export function assertMatchesSchema(schema: JsonSchema, value: unknown, field: string): void {
  const validate = compileSchema(schema, `${field} schema`);
  if (validate(value)) return;
  const { field: failing, message } = describeSchemaErrors(validate.errors, field);
  throw new ValidationError(message, { field: failing });
}
