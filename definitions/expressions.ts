/**
 * Expressions inside definitions: GitHub-Actions-style `${{ <jsonata> }}` templates.
 *
 * - A string that is exactly one template (surrounding whitespace allowed) evaluates to the
 *   expression's value with its JSON type (array, number, object, …).
 * - A string with text around or between templates is interpolated: strings are inserted as-is,
 *   `undefined` as the empty string, everything else as `JSON.stringify`.
 * - Objects and arrays are mapped recursively (keys are never evaluated); other scalars pass
 *   through.
 * - `when:` is one bare expression, written as `${{ expr }}` or as plain JSONata text.
 *
 * Expressions are JSONata, evaluated against an {@link ExpressionScope}
 * (`input.symbols`, `steps.load.output.rows`, `run.id`, `$exists(input.publishUrl)`). Compiled
 * expressions are cached by text. Results are normalised to plain JSON.
 *
 * JSONata note: a path that ends on an array value keeps it (`input.symbols` on
 * `{symbols: ["AAPL"]}` is `["AAPL"]`), but a path that *maps over* an array collapses a
 * one-element result to its single value (`steps.load.output.rows.symbol` on one row is
 * `"AAPL"`); append `[]` (`rows.symbol[]`) to always get an array.
 */
import jsonata from 'jsonata';
import { DefinitionError, ExpressionTimeoutError, LinearRegexEngine, linearRegExpProblem, ValidationError } from '../lib/index.js';
import { definitionLimits, onDefinitionLimitsChange } from './limits.js';

/** What expressions can read while a run executes. */
export type ExpressionScope = {
  /** The run input (validated against the definition's `input` schema). */
  input: unknown;
  /** Steps that have finished (or been skipped), keyed by step id. */
  steps: Record<string, { output: unknown; status: string }>;
  /** The run itself: its id and its definition as `slug@version` (or just the slug). */
  run: { id: string; definition: string };
  /**
   * The organization's secrets a step's `with:` names as `secrets.NAME` (only while that step's
   * input is resolved; never in `when`, `show` or `output`).
   */
  secrets?: Record<string, string>;
  /**
   * In a compensation step (named by another step's `compensate:`), the step it undoes: its id,
   * output and status (`compensated.output.bookingId`). Absent everywhere else.
   */
  compensated?: { id: string; output: unknown; status: string };
};

/** One piece of a template string: literal text or the JSONata text of one `${{ }}`. */
export type TemplatePart = { kind: 'text'; text: string } | { kind: 'expression'; expression: string };

/**
 * Guardrails for one evaluation: maximum nesting depth; the wall-clock limit is
 * `EXPRESSION_TIMEOUT_MS` ({@link definitionLimits}). JSONata checks both between evaluation
 * steps; a single regex call cannot run long because regexes run on the linear-time engine.
 */
const EVALUATION_MAX_DEPTH = 500;
/** At most this many compiled expressions are cached (oldest evicted first). */
const CACHE_LIMIT = 5000;

const cache = new Map<string, jsonata.Expression>();
// Compiled expressions carry the timeout they were compiled with.
onDefinitionLimitsChange(() => cache.clear());

const OPEN = '${{';

/**
 * Whether `text` contains a `${{` template opener (and therefore must be parsed as a template).
 */
export function hasTemplate(text: string): boolean {
  return text.includes(OPEN);
}

/**
 * Split a string into literal text and `${{ }}` expressions.
 *
 * The scanner honours JSONata string literals, backtick names, comments and nested braces, so
 * `${{ {"a": {"b": 1}} }}` is one expression.
 * @returns the parts in order; expression text is trimmed. A string without templates is one
 *   text part.
 * @throws {DefinitionError} for an unterminated `${{` or an empty `${{ }}` (message without file
 *   position; the loader adds it).
 */
export function parseTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let cursor = 0;
  while (cursor < text.length) {
    const open = text.indexOf(OPEN, cursor);
    if (open < 0) break;
    if (open > cursor) parts.push({ kind: 'text', text: text.slice(cursor, open) });
    const start = open + OPEN.length;
    const end = findClose(text, start);
    if (end < 0) throw new DefinitionError(`unterminated "\${{" (missing "}}") in "${text}"`);
    const expression = text.slice(start, end).trim();
    if (expression === '') throw new DefinitionError(`empty expression "\${{ }}" in "${text}"`);
    parts.push({ kind: 'expression', expression });
    cursor = end + 2;
  }
  if (cursor < text.length) parts.push({ kind: 'text', text: text.slice(cursor) });
  return parts;
}

/** Index of the `}}` closing a template whose body starts at `from`, or -1. */
function findClose(text: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"' || ch === "'" || ch === '`') {
      i = skipQuoted(text, i, ch);
      continue;
    }
    if (ch === '/' && text[i + 1] === '*') {
      const endComment = text.indexOf('*/', i + 2);
      if (endComment < 0) return -1;
      i = endComment + 2;
      continue;
    }
    if (ch === '{') depth += 1;
    else if (ch === '}') {
      if (depth === 0) return text[i + 1] === '}' ? i : -1;
      depth -= 1;
    }
    i += 1;
  }
  return -1;
}

/** Index just past the quoted run starting at `start` (backslash escapes except in backticks). */
function skipQuoted(text: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\' && quote !== '`') {
      i += 2;
      continue;
    }
    if (ch === quote) return i + 1;
    i += 1;
  }
  return text.length;
}

/**
 * The single expression of a string that is exactly one `${{ expr }}` (surrounding whitespace
 * allowed), or `undefined` if the string is plain text or an interpolation.
 * @throws {DefinitionError} if the template syntax is broken (see {@link parseTemplate}).
 */
export function wholeExpression(text: string): string | undefined {
  if (!hasTemplate(text)) return undefined;
  const parts = parseTemplate(text);
  const expressions = parts.filter((p) => p.kind === 'expression');
  const onlyWhitespace = parts.every((p) => p.kind === 'expression' || p.text.trim() === '');
  const [first] = expressions;
  return expressions.length === 1 && onlyWhitespace && first ? first.expression : undefined;
}

/**
 * Normalise a `when:` condition to bare JSONata text: `${{ expr }}` → `expr`; plain text is
 * already an expression.
 * @throws {DefinitionError} if the text mixes literal text and templates, or holds several.
 */
export function conditionExpression(text: string): string {
  if (!hasTemplate(text)) {
    const bare = text.trim();
    if (bare === '') throw new DefinitionError('condition is empty');
    return bare;
  }
  const whole = wholeExpression(text);
  if (whole === undefined) {
    throw new DefinitionError('a condition must be one expression, either "${{ expr }}" or plain JSONata');
  }
  return whole;
}

/** Error thrown by `jsonata()` / `evaluate()`. */
interface JsonataFailure {
  code: string;
  message: string;
  position?: number;
  token?: string;
}

function isJsonataFailure(value: unknown): value is JsonataFailure {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/**
 * Compile (or fetch from the cache) one JSONata expression.
 * @param expression - bare JSONata text (without `${{ }}`).
 * @throws {DefinitionError} on a syntax error; `details` holds `{expression, code, position, token}`
 *   (`position` is JSONata's character offset into the expression).
 */
export function compileExpression(expression: string): jsonata.Expression {
  const cached = cache.get(expression);
  if (cached) return cached;
  const limits = definitionLimits();
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > limits.expressionMaxBytes) {
    throw new DefinitionError(`expression is ${bytes} bytes long; at most ${limits.expressionMaxBytes} bytes (EXPRESSION_MAX_BYTES) are allowed`, {
      details: { code: 'EXPRESSION_TOO_LARGE', bytes, maxBytes: limits.expressionMaxBytes },
    });
  }
  let compiled: jsonata.Expression;
  try {
    compiled = jsonata(expression, { timeout: limits.expressionTimeoutMs, stack: EVALUATION_MAX_DEPTH, RegexEngine: LinearRegexEngine });
  } catch (err: unknown) {
    if (isJsonataFailure(err)) {
      const at = err.position === undefined ? '' : ` (at character ${err.position})`;
      throw new DefinitionError(`invalid expression "${expression}": ${err.message}${at}`, {
        cause: err,
        details: { expression, code: err.code, position: err.position, token: err.token },
      });
    }
    // JSONata's parser recurses per term: a pathological expression overflows the stack.
    if (err instanceof RangeError) throw new DefinitionError(`invalid expression: too deeply nested or too long to parse (${expression.length} characters)`, { cause: err });
    throw err;
  }
  const regexProblem = firstRegexProblem(compiled.ast());
  if (regexProblem !== undefined) {
    throw new DefinitionError(`invalid expression "${expression}": ${regexProblem}`, { details: { expression, code: 'REGEX_NOT_LINEAR' } });
  }
  if (cache.size >= CACHE_LIMIT) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(expression, compiled);
  return compiled;
}

/**
 * The first regex literal of a compiled expression that the linear-time engine cannot run, as
 * `regular expression /…/: <reason>` (an iterative walk over the AST), or `undefined`.
 */
function firstRegexProblem(ast: jsonata.ExprNode): string | undefined {
  const pending: unknown[] = [ast];
  const seen = new Set<object>();
  while (pending.length > 0) {
    const node = pending.pop();
    if (typeof node !== 'object' || node === null || seen.has(node)) continue;
    seen.add(node);
    if (node instanceof RegExp) {
      const problem = linearRegExpProblem(node.source, node.flags);
      if (problem !== undefined) return `regular expression /${node.source}/${node.flags.replace('g', '')} ${problem}`;
      continue;
    }
    for (const value of Object.values(node)) pending.push(value);
  }
  return undefined;
}

/**
 * Step ids an expression reads through `steps.<id>` (a textual scan; duplicates removed).
 */
export function referencedSteps(expression: string): string[] {
  const found = new Set<string>();
  for (const match of expression.matchAll(/(?<![A-Za-z0-9_$])steps\.([a-z][a-z0-9_]*)/g)) {
    const id = match[1];
    if (id !== undefined) found.add(id);
  }
  return [...found];
}

/** Secret names a mapping reads through `secrets.<NAME>` (a textual scan; sorted, unique). */
export function referencedSecrets(mapping: unknown): string[] {
  const found = new Set<string>();
  for (const site of templateSites(mapping)) {
    for (const part of parseTemplate(site.text)) {
      if (part.kind !== 'expression') continue;
      for (const match of part.expression.matchAll(/(?<![A-Za-z0-9_$.])secrets\.([A-Z][A-Z0-9_]*)/g)) {
        if (match[1] !== undefined) found.add(match[1]);
      }
    }
  }
  return [...found].sort();
}

/** A string inside a mapping that contains templates, with its path from the mapping root. */
export interface TemplateSite {
  path: Array<string | number>;
  text: string;
}

/**
 * Every string in `mapping` (recursively) that contains `${{`, with its path.
 * Object keys are not scanned (they are never evaluated).
 */
export function templateSites(mapping: unknown, path: Array<string | number> = []): TemplateSite[] {
  if (typeof mapping === 'string') return hasTemplate(mapping) ? [{ path, text: mapping }] : [];
  if (Array.isArray(mapping)) return mapping.flatMap((item, index) => templateSites(item, [...path, index]));
  if (isRecord(mapping)) {
    return Object.entries(mapping).flatMap(([key, value]) => templateSites(value, [...path, key]));
  }
  return [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSONata lambdas and native functions are values that have no JSON form. */
function isFunctionValue(value: unknown): boolean {
  return (
    typeof value === 'function' ||
    (typeof value === 'object' && value !== null && (value as { _jsonata_lambda?: unknown })._jsonata_lambda === true)
  );
}

/**
 * Normalise a JSONata result to plain JSON: sequences become plain arrays, functions and
 * `undefined` disappear (object keys are dropped, array items become `null`), non-finite
 * numbers become `null`, dates become ISO strings.
 * @returns the JSON value, or `undefined` if the value itself has no JSON form.
 */
export function toPlainJson(value: unknown): unknown {
  if (value === undefined || isFunctionValue(value)) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) {
    return value.map((item: unknown) => {
      const json = toPlainJson(item);
      return json === undefined ? null : json;
    });
  }
  if (isRecord(value)) {
    const entries: Array<[string, unknown]> = [];
    for (const [key, item] of Object.entries(value)) {
      const json = toPlainJson(item);
      if (json !== undefined) entries.push([key, json]);
    }
    return Object.fromEntries(entries);
  }
  return undefined;
}

/**
 * A private deep copy of the scope for one evaluation: JSONata sometimes marks arrays it returns
 * (e.g. `keepSingleton` for `path[]`), and those may be the caller's own arrays.
 */
function isolate(scope: ExpressionScope): ExpressionScope {
  try {
    return structuredClone(scope);
  } catch {
    return toPlainJson(scope) as ExpressionScope;
  }
}

/** Evaluate a bare expression against an already isolated scope. */
async function evaluateIsolated(expression: string, scope: ExpressionScope): Promise<unknown> {
  const compiled = compileExpression(expression);
  let result: unknown;
  try {
    result = await compiled.evaluate(scope);
  } catch (err: unknown) {
    if (isJsonataFailure(err) && err.code === 'D1012') {
      const { expressionTimeoutMs } = definitionLimits();
      throw new ExpressionTimeoutError(`expression "${expression}" ran longer than ${expressionTimeoutMs} ms (EXPRESSION_TIMEOUT_MS)`, {
        cause: err,
        details: { expression, timeoutMs: expressionTimeoutMs },
      });
    }
    if (err instanceof SyntaxError) {
      // A regex built at run time (`$eval`) that the linear-time engine cannot run.
      throw new ValidationError(`expression "${expression}" failed: ${err.message}`, { cause: err, details: { expression } });
    }
    if (isJsonataFailure(err)) {
      throw new ValidationError(`expression "${expression}" failed: ${err.message}`, {
        cause: err,
        details: { expression, code: err.code, position: err.position },
      });
    }
    throw err;
  }
  return toPlainJson(result);
}

/**
 * Evaluate one bare JSONata expression against `scope` (which is never modified).
 * @returns the result as plain JSON (`undefined` when the expression matches nothing).
 * @throws {DefinitionError} if the expression does not compile.
 * @throws {ValidationError} if evaluation fails (a JSONata runtime error such as a type error);
 *   `details` holds `{expression, code, position}`.
 * @throws {ExpressionTimeoutError} (`EXPRESSION_TIMEOUT`) past `EXPRESSION_TIMEOUT_MS`.
 */
export async function evaluateExpression(expression: string, scope: ExpressionScope): Promise<unknown> {
  return evaluateIsolated(expression, isolate(scope));
}

/** Text form of an interpolated value: strings as-is, `undefined` → `''`, others as JSON. */
function stringify(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? '';
}

/** Evaluate one string of a mapping (whole-value expression, interpolation, or plain text). */
async function evaluateString(text: string, scope: ExpressionScope): Promise<unknown> {
  if (!hasTemplate(text)) return text;
  const whole = wholeExpression(text);
  if (whole !== undefined) return evaluateIsolated(whole, scope);
  return renderIsolated(text, scope);
}

/** {@link evaluateMapping} against an already isolated scope. */
async function evaluateMappingIsolated(mapping: unknown, scope: ExpressionScope): Promise<unknown> {
  if (typeof mapping === 'string') return evaluateString(mapping, scope);
  if (Array.isArray(mapping)) {
    const items = await Promise.all(mapping.map((item: unknown) => evaluateMappingIsolated(item, scope)));
    return items.map((item) => (item === undefined ? null : item));
  }
  if (isRecord(mapping)) {
    const entries = await Promise.all(
      Object.entries(mapping).map(
        async ([key, value]): Promise<[string, unknown]> => [key, await evaluateMappingIsolated(value, scope)],
      ),
    );
    return Object.fromEntries(entries.filter(([, value]) => value !== undefined));
  }
  return toPlainJson(mapping);
}

/** {@link renderTemplate} against an already isolated scope. */
async function renderIsolated(text: string, scope: ExpressionScope): Promise<string> {
  if (!hasTemplate(text)) return text;
  const pieces = await Promise.all(
    parseTemplate(text).map(async (part) =>
      part.kind === 'text' ? part.text : stringify(await evaluateIsolated(part.expression, scope)),
    ),
  );
  return pieces.join('');
}

/**
 * Evaluate a mapping (a step's `with:`, a checkpoint's `show:`, the run `output:`) against
 * `scope` (which is never modified).
 * @param mapping - any JSON value whose strings may hold `${{ }}` templates.
 * @returns a new plain JSON value; object keys whose value evaluates to `undefined` are omitted,
 *   array items that evaluate to `undefined` become `null`, and a whole-value expression that
 *   matches nothing yields `undefined`.
 * @throws {DefinitionError} if an expression does not compile.
 * @throws {ValidationError} if an expression fails at evaluation time.
 */
export async function evaluateMapping(mapping: unknown, scope: ExpressionScope): Promise<unknown> {
  if (templateSites(mapping).length === 0) return toPlainJson(mapping);
  return evaluateMappingIsolated(mapping, isolate(scope));
}

/**
 * Interpolate every `${{ }}` in `text` (a checkpoint `prompt`, for example). Always returns a
 * string, even when the text is a single template.
 * @throws {DefinitionError} if the template syntax is broken or an expression does not compile.
 * @throws {ValidationError} if an expression fails at evaluation time.
 */
export async function renderTemplate(text: string, scope: ExpressionScope): Promise<string> {
  if (!hasTemplate(text)) return text;
  return renderIsolated(text, isolate(scope));
}

/**
 * JSONata truthiness (`$boolean`): `false`, `null`, `0`, `''`, empty arrays and objects,
 * functions and `undefined` are false; an array is true if any item is.
 */
export function isTruthy(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0 && !Number.isNaN(value);
  if (typeof value === 'string') return value.length > 0;
  if (isFunctionValue(value)) return false;
  if (Array.isArray(value)) return value.some((item: unknown) => isTruthy(item));
  if (isRecord(value)) return Object.keys(value).length > 0;
  return false;
}

/**
 * Evaluate a `when:` condition.
 * @param expression - `${{ expr }}` or bare JSONata text.
 * @returns the JSONata truthiness of the result (`undefined` → false).
 * @throws {DefinitionError} if the condition is malformed or does not compile.
 * @throws {ValidationError} if it fails at evaluation time.
 */
export async function evaluateCondition(expression: string, scope: ExpressionScope): Promise<boolean> {
  return isTruthy(await evaluateExpression(conditionExpression(expression), scope));
}
