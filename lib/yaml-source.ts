/**
 * YAML documents with positions (definitions, the agent catalog, step modules): problems are
 * reported as `file:line:column: message` in a {@link DefinitionError} whose `details.problems`
 * lists every {@link PositionedProblem}; JSON values (API bodies) get the same format with paths
 * instead of positions.
 */
import { isAlias, isMap, isNode, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { DefinitionError } from './errors.js';
import { LONE_SURROGATE, jsonProblem, stringProblem } from './json-guard.js';

/** At most this many problems are spelled out in the error message (all are in `details`). */
const MAX_PROBLEMS_IN_MESSAGE = 5;

/** A segment of a path inside a document: a mapping key or a list index. */
export type Segment = string | number;

/** A problem found in a source document, positioned by its path. */
export interface SourceProblem {
  path: Segment[];
  message: string;
  /** Point at the key of the last path segment instead of its value (unknown keys). */
  atKey?: boolean;
}

/** One positioned problem, as listed in `DefinitionError.details.problems`. */
export interface PositionedProblem {
  file: string;
  /** 1-based line (absent for JSON values). */
  line?: number;
  /** 1-based column (absent for JSON values). */
  column?: number;
  /** Dotted path of the node, e.g. `config.statements.symbols.sql` (`''` for the document). */
  path: string;
  message: string;
}

/** A parsed YAML document: its plain value and a way to locate nodes. */
export interface YamlSource {
  file: string;
  value: unknown;
  /** 1-based position of the node at `path` (or its closest existing ancestor). */
  positionOf(path: readonly Segment[], atKey?: boolean): { line: number; column: number };
}

/** `['config', 'statements', 0]` → `config.statements[0]`. */
export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

/** Offset of the node at `path`, walking maps and sequences (aliases resolved). */
function offsetOf(doc: Document.Parsed, path: readonly Segment[], atKey: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [i, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((item) => String(isScalar(item.key) ? item.key.value : item.key) === String(segment));
      if (!pair) break;
      const keyOffset = rangeStart(pair.key);
      if (atKey && i === path.length - 1) return keyOffset ?? offset;
      // An empty value (`key:` with nothing after it) has no text of its own: point at its key.
      const value = pair.value;
      const emptyValue = value === null || (isScalar(value) && value.value === null && value.range?.[0] === value.range?.[1]);
      offset = (emptyValue ? undefined : rangeStart(value)) ?? keyOffset ?? offset;
      node = value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** `file:line:column: message`, or `file: path: message` without a position. */
function formatProblem(problem: PositionedProblem): string {
  if (problem.line !== undefined && problem.column !== undefined) {
    return `${problem.file}:${problem.line}:${problem.column}: ${problem.message}`;
  }
  const named = problem.path === '' || problem.message.startsWith(`${problem.path}: `);
  return named ? `${problem.file}: ${problem.message}` : `${problem.file}: ${problem.path}: ${problem.message}`;
}

/**
 * The error for positioned problems: up to five in the message (joined by `; `), all in
 * `details.problems`, `details.file` the first one's file.
 */
export function problemsError(problems: readonly PositionedProblem[]): DefinitionError {
  const shown = problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map(formatProblem);
  const more = problems.length > MAX_PROBLEMS_IN_MESSAGE ? ` (and ${problems.length - MAX_PROBLEMS_IN_MESSAGE} more)` : '';
  return new DefinitionError(shown.join('; ') + more, { details: { file: problems[0]?.file, problems: [...problems] } });
}

/**
 * Position `problems` in `source` (document order) and build the error; without a source (a
 * JSON value) problems carry their path only.
 */
export function sourceError(file: string, source: YamlSource | undefined, problems: readonly SourceProblem[]): DefinitionError {
  const positioned = problems.map((problem): PositionedProblem => {
    const base = { file, path: formatPath(problem.path), message: problem.message };
    return source ? { ...base, ...source.positionOf(problem.path, problem.atKey === true) } : base;
  });
  positioned.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return problemsError(positioned);
}

/**
 * Parse one YAML document (unique keys, at most 100 aliases). Like every input (`json-guard.ts`),
 * it may hold no NUL character or lone surrogate (in its text or, escaped, in a value or key) and
 * nest at most 64 levels deep.
 * @param text - the YAML text.
 * @param file - path or label for messages.
 * @throws {DefinitionError} `file:line:column: YAML syntax error: …` for malformed YAML, or
 *   `file:line:column: path: contains a NUL character …` for the input guard's refusals.
 */
export function parseYamlSource(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const textProblem = stringProblem(text);
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (err: unknown) {
    // The parser recurses per nesting level: a pathological document overflows the stack.
    const message = err instanceof RangeError ? 'the document is nested too deeply' : err instanceof Error ? err.message : String(err);
    throw problemsError([{ file, line: 1, column: 1, path: '', message: `YAML error: ${message}` }]);
  }
  const position = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (textProblem) {
    const at = text.includes('\u0000') ? text.indexOf('\u0000') : text.search(LONE_SURROGATE);
    throw problemsError([{ file, ...position(Math.max(at, 0)), path: '', message: `the document ${textProblem}` }]);
  }
  if (doc.errors.length > 0) {
    throw problemsError(
      doc.errors.map((error) => ({ file, ...position(error.pos[0]), path: '', message: `YAML syntax error: ${error.message}` })),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err: unknown) {
    const message = err instanceof RangeError ? 'the document is nested too deeply' : err instanceof Error ? err.message : String(err);
    throw problemsError([{ file, line: 1, column: 1, path: '', message: `YAML error: ${message}` }]);
  }
  const problem = jsonProblem(value);
  if (problem) {
    const path = formatPath(problem.path);
    throw problemsError([{ file, ...position(offsetOf(doc, problem.path, false)), path, message: `${path || 'the document'}: ${problem.message}` }]);
  }
  return { file, value, positionOf: (path, atKey = false) => position(offsetOf(doc, path, atKey)) };
}

/**
 * Problems of a failed zod parse, with readable rules (`missing required key "name"`, `unknown
 * key "x"`, `must be …`), under `prefix`.
 * @param issues - the zod issues.
 * @param value - the value that was parsed (to tell a missing key from a wrong type).
 * @param prefix - path of the parsed value inside the document (e.g. `['config']`).
 */
export function zodProblems(issues: readonly z.core.$ZodIssue[], value: unknown, prefix: readonly Segment[] = []): SourceProblem[] {
  return issues.flatMap((issue): SourceProblem[] => {
    const local = issue.path.filter((segment): segment is Segment => typeof segment !== 'symbol');
    const path = [...prefix, ...local];
    const label = formatPath(path) || 'the document';
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...path, key], atKey: true, message: `unknown key "${formatPath([...path, key])}"` }));
    }
    if (issue.code === 'invalid_type' && valueAt(value, local) === undefined && path.length > 0) {
      const parent = path.slice(0, -1);
      return [{ path: parent, message: `missing required key "${formatPath(path)}"` }];
    }
    return [{ path, message: `${label}: ${issue.message.replace(/^Invalid input: /, '')}` }];
  });
}

function valueAt(root: unknown, path: readonly Segment[]): unknown {
  let node = root;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[String(segment)];
  }
  return node;
}

/** Lexer tokens that only mark what follows (document start, scalar start, …): control characters. */
function isControlToken(token: string): boolean {
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    if (code >= 0x20 || code === 0x0a) return false;
  }
  return token.length > 0;
}

/**
 * How many items the block sequence under the top-level `key` holds (`steps:` followed by
 * `- …` lines), counted from YAML lexer tokens without building a document (about 8× faster
 * than parsing, so a huge definition is refused before it is parsed). Multi-line scalars are one
 * token each, so a `-` inside one is never counted.
 * @returns the count, or `undefined` when the key is absent or not a block sequence (flow style,
 *   a quoted key): the caller counts after parsing instead.
 */
export function blockSequenceLength(text: string, key: string): number | undefined {
  let lineStart = true;
  let indent = 0;
  let state: 'before' | 'key' | 'items' = 'before';
  let itemIndent = -1;
  let count = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '\n' || token === '\r\n') {
      lineStart = true;
      indent = 0;
      continue;
    }
    if (isControlToken(token)) continue;
    if (token.includes('\n')) {
      // A multi-line scalar (a block scalar's body ends with its newline).
      lineStart = token.endsWith('\n');
      indent = 0;
      continue;
    }
    if (state === 'key') {
      // The rest of the `key:` line: only a comment may follow a block sequence's key.
      if (lineStart) state = 'items';
      else if (token.trim() === '' || token.startsWith('#') || token === ':') continue;
      else return undefined;
    }
    if (!lineStart) continue;
    if (/^ +$/.test(token)) {
      indent = token.length;
      continue;
    }
    if (token.startsWith('#')) continue;
    lineStart = false;
    if (state === 'before') {
      if (indent === 0 && token === key) state = 'key';
      continue;
    }
    if (token === '-' && (itemIndent < 0 || indent === itemIndent)) {
      itemIndent = indent;
      count += 1;
    } else if (indent < Math.max(itemIndent, 1) && !(token === '-' && indent > itemIndent)) {
      break;
    }
  }
  return state === 'items' ? count : undefined;
}
