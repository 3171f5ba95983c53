/**
 * Regular expressions from users (JSONata regex literals, JSON Schema `pattern` and
 * `patternProperties`) run on V8's linear-time engine, so no input can make one backtrack for
 * seconds (`^(a+)+$` on 30 a's and `!` takes 35+ s on the backtracking engine, microseconds here).
 *
 * Importing this module sets three V8 flags for the whole process (worker threads included):
 * `--enable-experimental-regexp-engine` (the `l` flag: always the linear engine),
 * `--enable-experimental-regexp-engine-on-excessive-backtracks` and
 * `--regexp-backtracks-before-fallback` (any other regex of the process that backtracks more than
 * {@link BACKTRACKS_BEFORE_FALLBACK} times is re-run on the linear engine when it can be; same
 * result). Node refuses these flags in `NODE_OPTIONS`; `v8.setFlagsFromString` applies them to
 * regexes compiled afterwards and to ones compiled before but first run afterwards.
 *
 * The linear engine cannot run backreferences, lookahead/lookbehind, the `i` (case-insensitive)
 * and `u` (unicode) flags, or large counted repetitions (`a{1000}`); such a user regex is refused
 * ({@link linearRegExpProblem}) when the definition or schema is loaded, naming the field.
 */
import { setFlagsFromString } from 'node:v8';

/** Backtracks after which a backtracking-engine regex is re-run on the linear engine. */
export const BACKTRACKS_BEFORE_FALLBACK = 10_000;

let enabled = false;

/** Set the V8 flags (idempotent; done when this module is imported). */
export function enableLinearRegExp(): void {
  if (enabled) return;
  enabled = true;
  setFlagsFromString('--enable-experimental-regexp-engine');
  setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`);
}

enableLinearRegExp();

/** Unicode-only syntax whose meaning changes without the `u` flag (`\p{L}`, `\u{1F600}`). */
const UNICODE_ONLY = /\\[pP]\{|\\u\{/;
/** A UTF-16 surrogate: astral characters match differently without the `u` flag. */
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Why `source` with `flags` cannot run on the linear-time engine, or `undefined` if it can.
 * @param flags - JavaScript regex flags (`g`, `m`, `s`, `y` are fine; `i` and `u` are not).
 * @returns a sentence for an error message (`uses a backreference, lookaround, …`).
 */
export function linearRegExpProblem(source: string, flags = ''): string | undefined {
  if (flags.includes('i')) {
    return 'uses the case-insensitive flag "i", which cannot run in guaranteed linear time; write character classes such as [Aa] instead';
  }
  try {
    new RegExp(source, `${flags.replace(/[ul]/g, '')}l`);
    return undefined;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    if (err.message.includes('linear time')) {
      return 'cannot run in guaranteed linear time (backreferences, lookahead/lookbehind and large counted repetitions such as {1000} are not supported)';
    }
    return err.message;
  }
}

/** A user regex the linear engine cannot run (see {@link linearRegExpProblem}). */
export class LinearRegExpError extends SyntaxError {
  constructor(
    readonly source: string,
    readonly reason: string,
    flags = '',
  ) {
    super(`regular expression /${source}/${flags.replace(/[gu]/g, '')} ${reason}`);
    this.name = 'LinearRegExpError';
  }
}

/**
 * Compile a user regex for the linear-time engine (the `l` flag; `u` is dropped).
 * @throws {LinearRegExpError} when it cannot run there or is not a valid regex.
 */
export function linearRegExp(source: string, flags = ''): RegExp {
  const linearFlags = `${flags.replace(/[ul]/g, '')}l`;
  const key = `${linearFlags}/${source}`;
  if (accepted.has(key)) return new RegExp(source, linearFlags);
  const problem = linearRegExpProblem(source, flags);
  if (problem !== undefined) throw new LinearRegExpError(source, problem, flags);
  if (accepted.size >= ACCEPTED_LIMIT) accepted.clear();
  accepted.add(key);
  return new RegExp(source, linearFlags);
}

/** Regexes already checked (flags and source), so a hot expression is checked once. */
const accepted = new Set<string>();
const ACCEPTED_LIMIT = 5000;

/**
 * JSONata's `RegexEngine` option: called with `new` and the regex literal as parsed; returns its
 * linear-time copy (a constructor may return another object).
 * @throws {LinearRegExpError} for a regex the linear engine cannot run (e.g. built by `$eval`).
 */
export const LinearRegexEngine = function LinearRegexEngine(literal: RegExp): RegExp {
  return linearRegExp(literal.source, literal.flags);
} as unknown as RegExpConstructor;

/**
 * Ajv's `code.regExp` option: JSON Schema patterns are compiled for the linear engine. JSON
 * Schema patterns are unicode regexes (`u`); the linear engine runs them without `u`, so
 * unicode-only syntax (`\p{…}`, `\u{…}`) and astral characters are refused rather than silently
 * matched differently.
 * @throws {LinearRegExpError} (ajv reports it as a schema compile error).
 */
export const ajvLinearRegExp = Object.assign(
  (pattern: string, unicode: string): RegExp => {
    if (unicode.includes('u')) {
      new RegExp(pattern, 'u'); // a SyntaxError, as ajv would give, for a pattern invalid as unicode
      if (UNICODE_ONLY.test(pattern) || SURROGATE.test(pattern)) {
        throw new LinearRegExpError(pattern, 'uses unicode-only syntax (\\p{…}, \\u{…} or astral characters), which the linear-time engine does not support');
      }
    }
    return linearRegExp(pattern);
  },
  { code: 'linearRegExp' },
);
