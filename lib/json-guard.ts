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

/**
 * What is wrong with a string, if anything.
 * @returns `contains a NUL character (\u0000)`, `contains a lone surrogate (\uD8xx)`, or `undefined`.
 */
export function stringProblem(text: string): string | undefined {
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
  const stack: Array<{ value: unknown; path: Array<string | number> }> = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value: node, path } = item;
    if (typeof node === 'string') {
      const problem = stringProblem(node);
      if (problem) return { path, message: problem };
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    if (path.length >= maxDepth) return { path, message: `nested more than ${maxDepth} levels deep` };
    const children: Array<{ value: unknown; path: Array<string | number> }> = [];
    if (Array.isArray(node)) {
      node.forEach((child: unknown, index) => children.push({ value: child, path: [...path, index] }));
    } else {
      for (const [key, child] of Object.entries(node as Record<string, unknown>)) {
        const problem = stringProblem(key);
        if (problem) return { path: [...path, key], message: `key ${problem}` };
        children.push({ value: child, path: [...path, key] });
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as (typeof children)[number]);
  }
  return undefined;
}

/** `['input', 'a', 0]` → `input.a.0` (the dotted form errors name fields with); empty → `fallback`. */
export function dottedPath(path: ReadonlyArray<string | number>, fallback: string): string {
  return path.length === 0 ? fallback : path.map(String).join('.');
}
