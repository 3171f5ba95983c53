/**
 * One check for every value that comes in from outside (request bodies, query strings, headers,
 * path parameters, YAML documents, run input): no NUL character and no lone UTF-16 surrogate in
 * any string or key (Postgres `text` and `jsonb` refuse both), and nesting at most
 * {@link MAX_JSON_DEPTH} levels deep. The walk is iterative, so any depth is safe to inspect.
 */

/** Deepest nesting of arrays and objects accepted in any input (the top-level value is level 1). */
export const MAX_JSON_DEPTH = 64;

/** A lone high surrogate (not followed by a low one) or a lone low surrogate (not after a high one). */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Any character that could be a problem (a NUL or any surrogate): when absent, the string is clean. */
// eslint-disable-next-line no-control-regex -- NUL is exactly what it looks for
const SUSPECT_CHARACTER = /[\u0000\uD800-\uDFFF]/;

/**
 * What is wrong with a string, if anything.
 * @returns `contains a NUL character (\u0000)`, `contains a lone surrogate (\uD8xx)`, or `undefined`.
 */
export function stringProblem(text: string): string | undefined {
  if (!SUSPECT_CHARACTER.test(text)) return undefined; // the common case: one scan, no allocation
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000), which is not accepted';
  const lone = LONE_SURROGATE.exec(text);
  if (lone) {
    const hex = lone[0].charCodeAt(0).toString(16).toUpperCase();
    return `contains a lone surrogate (\\u${hex}), which is not valid Unicode`;
  }
  return undefined;
}

/** The first problem found by {@link jsonProblem}. */
export interface JsonProblem {
  /** Path segments from the root (object keys and array indexes); empty for the root itself. */
  path: Array<string | number>;
  message: string;
}

/**
 * Walk a parsed JSON (or YAML) value in document order and report its first problem: a string
 * value or object key with a NUL or a lone surrogate, or nesting deeper than `maxDepth`.
 * @param maxDepth - deepest nesting accepted; default {@link MAX_JSON_DEPTH}.
 * @returns the first problem, or `undefined` when the value is clean.
 */
export function jsonProblem(value: unknown, maxDepth: number = MAX_JSON_DEPTH): JsonProblem | undefined {
  if (maxDepth >= MAX_JSON_DEPTH && typeof value === 'object' && value !== null && cleanValues.has(value)) return undefined;
  // Paths are built only for a problem found: each entry links to its parent's entry.
  const stack: WalkEntry[] = [{ value, segment: undefined, parent: undefined, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const node = item.value;
    if (typeof node === 'string') {
      const problem = stringProblem(node);
      if (problem) return { path: pathOf(item), message: problem };
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    if (item.depth >= maxDepth) return { path: pathOf(item), message: `nested more than ${maxDepth} levels deep` };
    const depth = item.depth + 1;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push({ value: node[i] as unknown, segment: i, parent: item, depth });
      continue;
    }
    const entries = Object.entries(node as Record<string, unknown>);
    for (const [key] of entries) {
      const problem = stringProblem(key);
      if (problem) return { path: [...pathOf(item), key], message: `key ${problem}` };
    }
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i] as [string, unknown];
      stack.push({ value: child, segment: key, parent: item, depth });
    }
  }
  return undefined;
}

/** One value on {@link jsonProblem}'s stack: its key or index in its parent, and its nesting depth (root 0). */
interface WalkEntry {
  value: unknown;
  segment: string | number | undefined;
  parent: WalkEntry | undefined;
  depth: number;
}

function pathOf(entry: WalkEntry): Array<string | number> {
  const path: Array<string | number> = [];
  for (let e: WalkEntry | undefined = entry; e?.segment !== undefined; e = e.parent) path.push(e.segment);
  return path.reverse();
}

/**
 * Parsed values already found clean by {@link jsonProblem} (at the default depth or less) in this
 * process, so that a later check of the same object — the run input of a request body the
 * request guard walked — costs nothing. Only objects nothing mutates afterwards may be marked.
 */
const cleanValues = new WeakSet<object>();

/**
 * Whether valid UTF-8 JSON text (the bytes a parser accepted) parses to a clean value, judged
 * from its bytes in one pass: no `\\u` escape in a string (in JSON text a NUL or a surrogate can
 * only come from one: raw control characters are not valid JSON, and decoding UTF-8 never
 * yields a surrogate), and brackets outside strings nested at most {@link MAX_JSON_DEPTH} deep.
 * `false` only means: walk the parsed value (`jsonProblem`) to find out.
 */
export function cleanJsonText(utf8: Uint8Array): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < utf8.length; i++) {
    const byte = utf8[i];
    if (inString) {
      if (byte === 0x22) inString = false; // "
      else if (byte === 0x5c) {
        if (utf8[i + 1] === 0x75) return false; // \u
        i += 1; // the escaped character
      }
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) {
      depth += 1; // { [
      if (depth > MAX_JSON_DEPTH) return false;
    } else if (byte === 0x7d || byte === 0x5d) depth -= 1; // } ]
  }
  return true;
}

/**
 * Record that `value` and the object values directly inside it passed {@link jsonProblem} (a
 * part of a clean value is clean: no NUL or lone surrogate, and nested no deeper than it).
 */
export function markClean(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  cleanValues.add(value);
  for (const child of Object.values(value as Record<string, unknown>)) if (typeof child === 'object' && child !== null) cleanValues.add(child);
}

/** `['input', 'a', 0]` → `input.a.0` (the dotted form errors name fields with); empty → `fallback`. */
export function dottedPath(path: ReadonlyArray<string | number>, fallback: string): string {
  return path.length === 0 ? fallback : path.map(String).join('.');
}
