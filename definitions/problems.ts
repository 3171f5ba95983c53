/**
 * Definition problems: turning zod's shape issues into readable, path-addressed rules
 * (`step kpis: retry.attempts must be at most 20 (got 50)`), with "did you mean" hints for
 * misspelled or misplaced step keys. Positions (`file:line:column`) are added later by
 * `lib/yaml-source.ts` from each problem's path.
 */
import type { z } from 'zod';
import { formatPath, type Segment, type SourceProblem } from '../lib/index.js';
import { STEP_ID_PATTERN, STEP_KEYS, stepShapeOf, type StepShapeKind } from './schema.js';

/**
 * A problem before it is given a position: `path` is the JSON path of the offending node inside
 * the document (`['steps', 1, 'needs', 0]`), `message` the broken rule.
 */
export type PendingProblem = SourceProblem;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueAt(root: unknown, path: readonly Segment[]): unknown {
  let node = root;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isRecord(node)) node = node[String(segment)];
    else return undefined;
  }
  return node;
}

/** `step <id>` for paths inside a step (or `steps[i]` if its id is unusable), else `''`. */
function subjectOf(path: readonly Segment[], raw: unknown): { subject: string; rest: Segment[] } {
  const [first, index] = path;
  if (first === 'steps' && typeof index === 'number') {
    const id = valueAt(raw, ['steps', index, 'id']);
    const subject = typeof id === 'string' && STEP_ID_PATTERN.test(id) ? `step ${id}` : `steps[${index}]`;
    return { subject, rest: path.slice(2) };
  }
  return { subject: '', rest: [...path] };
}

/** Prefix a rule with its subject (`step kpis: …`); an empty subject leaves the text as is. */
export function compose(subject: string, text: string): string {
  return subject === '' ? text : `${subject}: ${text}`;
}

/** Short description of a value for messages. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const EXPECTED_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

const SHAPE_NAMES: Record<StepShapeKind, string> = {
  agent: 'agent',
  'function-code': 'type: function',
  http: 'type: http',
  llm: 'type: context',
  orchestrator: 'type: orchestrator',
  checkpoint: 'type: checkpoint',
};

/** Levenshtein distance (for "did you mean" hints on short keys). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = current;
  }
  return previous[b.length] ?? Math.max(a.length, b.length);
}

/**
 * Explain an unknown step key: it belongs to another kind of step, or it looks like a known key.
 */
function unknownStepKeyHint(key: string, raw: unknown, rest: readonly Segment[], stepPath: readonly Segment[]): string {
  if (rest.length !== 0) return '';
  const shape = stepShapeOf(valueAt(raw, stepPath));
  const owners = (Object.keys(STEP_KEYS) as StepShapeKind[]).filter((kind) => kind !== shape && STEP_KEYS[kind].includes(key));
  if (owners.length > 0) return ` (only valid on ${owners.map((kind) => SHAPE_NAMES[kind]).join(' / ')} steps)`;
  const allowed = shape === undefined ? [] : STEP_KEYS[shape];
  const close = allowed.find((candidate) => editDistance(candidate, key) <= 2);
  return close === undefined ? '' : ` (did you mean "${close}"?)`;
}

/**
 * Turn one zod issue into problems addressed by path, each with a readable rule.
 * @param raw - the whole document the issue was found in (for step ids and offending values).
 */
export function problemsFromIssue(issue: z.core.$ZodIssue, raw: unknown): PendingProblem[] {
  const path = issue.path.filter((segment): segment is Segment => typeof segment !== 'symbol');
  const { subject, rest } = subjectOf(path, raw);
  const label = formatPath(rest) || (subject === '' ? 'the definition' : '');
  const value = valueAt(raw, path);
  const rule = (text: string): PendingProblem => ({ path, message: compose(subject, label ? `${label} ${text}` : text) });

  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        atKey: true,
        message: compose(
          subject,
          `unknown key "${formatPath([...rest, key])}"${subject === '' ? '' : unknownStepKeyHint(key, raw, rest, path.slice(0, 2))}`,
        ),
      }));
    case 'invalid_type': {
      if (value === undefined && path.length > 0) {
        return [{ path: path.slice(0, -1), message: compose(subject, `missing required key "${formatPath(rest)}"`) }];
      }
      const expected = EXPECTED_NAMES[issue.expected] ?? issue.expected;
      return [rule(`must be ${expected} (got ${describeValue(value)})`)];
    }
    case 'invalid_format':
      return [rule(issue.pattern ? `must match ${issue.pattern} (got ${describeValue(value)})` : `must be a valid ${issue.format}`)];
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return [rule(min <= 1 ? 'must not be empty' : `must have at least ${min} items`)];
      if (issue.origin === 'string') return [rule(min <= 1 ? 'must not be empty' : `must have at least ${min} characters`)];
      return [rule(`${issue.inclusive === false ? 'must be greater than' : 'must be at least'} ${min} (got ${describeValue(value)})`)];
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'array') return [rule(`must have at most ${max} items`)];
      if (issue.origin === 'string') return [rule(`must have at most ${max} characters`)];
      return [rule(`${issue.inclusive === false ? 'must be less than' : 'must be at most'} ${max} (got ${describeValue(value)})`)];
    }
    case 'invalid_value': {
      const values = issue.values.map((v) => String(v));
      return [
        rule(
          values.length === 1
            ? `must be ${JSON.stringify(values[0])} (got ${describeValue(value)})`
            : `must be one of ${values.join(', ')} (got ${describeValue(value)})`,
        ),
      ];
    }
    case 'custom':
      return [rule(issue.message)];
    default:
      return [rule(issue.message)];
  }
}

/** A duration in milliseconds for messages: `86400000` → `24h` (largest exact unit). */
export function formatMs(value: number): string {
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (value % size === 0) return `${value / size}${unit}`;
  return `${value}ms`;
}
