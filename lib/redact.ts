/**
 * Redaction of secret values from anything Baton shows or stores outside the step that uses them
 * (events, the run view, the manifest, SSE, webhook bodies, error messages, BullMQ failure
 * reasons, logs), and the split of a run's input into what may be shown and what is sealed.
 */

/** What every redacted value, or part of a string, is replaced with. */
export const REDACTED = '[redacted]';

/**
 * Values shorter than this many characters are replaced only where a whole string equals them:
 * replacing every occurrence of, say, `"ab"` inside other strings would mangle unrelated text
 * (and reveal the secret by the pattern of the damage) while protecting nothing.
 */
export const MIN_SUBSTRING_SECRET_CHARS = 4;

/** The forms of one secret value that are searched for: itself, base64, base64url, URL-encoded. */
export function secretForms(value: string): string[] {
  const forms = new Set<string>([value]);
  const bytes = Buffer.from(value, 'utf8');
  forms.add(bytes.toString('base64'));
  forms.add(bytes.toString('base64').replace(/=+$/, ''));
  forms.add(bytes.toString('base64url'));
  forms.add(encodeURIComponent(value));
  forms.add(new URLSearchParams({ v: value }).toString().slice(2)); // form encoding: space as "+"
  return [...forms].filter((f) => f.length > 0);
}

/** Up to this many needles, a text is first searched for each with `String#includes`. */
const FEW_NEEDLES = 32;

/** Slots of the prefix filter of {@link SubstringReplacer}. */
const PREFIX_SLOTS = 1 << 20;

/** Hash of the three UTF-16 code units of `text` at `i` into {@link PREFIX_SLOTS} slots. */
function prefixSlot(text: string, i: number): number {
  return Math.imul(text.charCodeAt(i) * 961 + text.charCodeAt(i + 1) * 31 + text.charCodeAt(i + 2), 0x9e3779b1) >>> 12;
}

/** Needles sharing their first characters, by length (longest first). */
interface Bucket {
  /** Distinct needle lengths, descending. */
  lengths: number[];
  byLength: Map<number, Set<string>>;
}

/**
 * Finds many fixed strings in one left-to-right scan: needles are bucketed by their first
 * {@link MIN_SUBSTRING_SECRET_CHARS} characters and, inside a bucket, by length, so a position of
 * the text costs one map look-up plus one set look-up per distinct needle length of its bucket,
 * whatever the number of needles (a regular expression with thousands of alternatives would try
 * each of them at every position). At one position the longest match wins. Adding and removing a
 * needle is O(1) (plus the bucket's few distinct lengths), so the set can change at run time.
 */
export class SubstringReplacer {
  private readonly buckets = new Map<string, Bucket>();
  /** How many times each needle was added (the same form of two values counts twice). */
  private readonly refs = new Map<string, number>();
  /**
   * Needles per hash of their first three UTF-16 code units (2^20 slots, 4 MiB): a filter that
   * lets most positions of a line pass without building a string, even with thousands of
   * needles. Allocated with the first needle: most redactors (a step with no secrets) have none,
   * and a step hop must not pay a 4 MiB allocation (it cost 6 % of a worker's CPU, plus GC).
   */
  private prefixes: Uint32Array | undefined;

  /** @param needles - strings of at least {@link MIN_SUBSTRING_SECRET_CHARS} characters (shorter ones are ignored). */
  constructor(needles: Iterable<string> = []) {
    for (const needle of needles) this.add(needle);
  }

  /** Add one needle (ignored when shorter than {@link MIN_SUBSTRING_SECRET_CHARS}). */
  add(needle: string): void {
    if (needle.length < MIN_SUBSTRING_SECRET_CHARS) return;
    const count = this.refs.get(needle) ?? 0;
    this.refs.set(needle, count + 1);
    if (count > 0) return;
    const key = needle.slice(0, MIN_SUBSTRING_SECRET_CHARS);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { lengths: [], byLength: new Map() };
      this.buckets.set(key, bucket);
    }
    let same = bucket.byLength.get(needle.length);
    if (!same) {
      same = new Set();
      bucket.byLength.set(needle.length, same);
      bucket.lengths.push(needle.length);
      bucket.lengths.sort((a, b) => b - a);
    }
    same.add(needle);
    const slot = prefixSlot(needle, 0);
    this.prefixes ??= new Uint32Array(PREFIX_SLOTS);
    this.prefixes[slot] = (this.prefixes[slot] ?? 0) + 1;
  }

  /** Remove one needle added before (each `add` needs its own `delete`). */
  delete(needle: string): void {
    const count = this.refs.get(needle);
    if (count === undefined) return;
    if (count > 1) {
      this.refs.set(needle, count - 1);
      return;
    }
    this.refs.delete(needle);
    const key = needle.slice(0, MIN_SUBSTRING_SECRET_CHARS);
    const bucket = this.buckets.get(key);
    const same = bucket?.byLength.get(needle.length);
    if (!bucket || !same) return;
    same.delete(needle);
    if (same.size === 0) {
      bucket.byLength.delete(needle.length);
      bucket.lengths = bucket.lengths.filter((length) => length !== needle.length);
      if (bucket.lengths.length === 0) this.buckets.delete(key);
    }
    const slot = prefixSlot(needle, 0);
    if (this.prefixes) this.prefixes[slot] = Math.max(0, (this.prefixes[slot] ?? 1) - 1);
  }

  /** Whether there are no needles. */
  get isEmpty(): boolean {
    return this.buckets.size === 0;
  }

  /** `text` with every (non-overlapping, leftmost-longest) needle replaced by `replacement`. */
  replace(text: string, replacement: string = REDACTED): string {
    const prefixes = this.prefixes;
    if (this.buckets.size === 0 || !prefixes) return text;
    // Few needles: the engine's native substring search finds "none here" (the usual case) faster.
    if (this.refs.size <= FEW_NEEDLES) {
      let any = false;
      for (const needle of this.refs.keys()) {
        if (text.includes(needle)) {
          any = true;
          break;
        }
      }
      if (!any) return text;
    }
    let out: string | undefined;
    let copied = 0;
    const last = text.length - MIN_SUBSTRING_SECRET_CHARS;
    for (let i = 0; i <= last; i += 1) {
      if (prefixes[prefixSlot(text, i)] === 0) continue;
      const bucket = this.buckets.get(text.slice(i, i + MIN_SUBSTRING_SECRET_CHARS));
      if (!bucket) continue;
      const length = bucket.lengths.find((n) => i + n <= text.length && bucket.byLength.get(n)?.has(text.slice(i, i + n)) === true);
      if (length === undefined) continue;
      out = (out ?? '') + text.slice(copied, i) + replacement;
      i += length - 1;
      copied = i + 1;
    }
    return out === undefined ? text : out + text.slice(copied);
  }
}

/**
 * Replaces secret values (and their base64 and URL-encoded forms) with {@link REDACTED}, in one
 * scan per string (see {@link SubstringReplacer}).
 */
export class Redactor {
  private readonly replacer: SubstringReplacer;
  /** Every value, matched as a whole string (the only match for values below the minimum length). */
  private readonly whole: Set<string>;

  /** @param values - the secret values (empty strings ignored). */
  constructor(values: Iterable<string>) {
    const forms: string[] = [];
    this.whole = new Set();
    for (const value of values) {
      if (value.length === 0) continue;
      this.whole.add(value);
      if (value.length >= MIN_SUBSTRING_SECRET_CHARS) forms.push(...secretForms(value));
    }
    this.replacer = new SubstringReplacer(forms);
  }

  /** Whether there is nothing to redact. */
  get isEmpty(): boolean {
    return this.whole.size === 0;
  }

  /** `s` with every occurrence of a (long enough) secret form replaced. */
  redactText(s: string): string {
    if (this.whole.has(s)) return REDACTED;
    return this.replacer.replace(s);
  }

  /**
   * A deep copy of a JSON-like value with secrets replaced inside every string value (object
   * keys are kept: they are names, not data). Non-plain objects (`Date`, `Buffer`, …) are kept
   * as they are; cycles are not supported (JSON values have none).
   */
  redact<T>(value: T): T {
    if (this.isEmpty) return value;
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.redactText(value);
    if (Array.isArray(value)) return value.map((v: unknown) => this.walk(v));
    if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      const copy: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) copy[key] = this.walk(v);
      return copy;
    }
    return value;
  }
}

/** A JSON Schema, as far as {@link splitSensitiveInput} reads it. */
export type JsonSchema = boolean | { [keyword: string]: unknown };

/** One sensitive field: where it is in the input and its real value. */
export interface SealedField {
  path: (string | number)[];
  value: unknown;
}

type SchemaObject = { [keyword: string]: unknown };

function isObject(value: unknown): value is SchemaObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Resolve a local `$ref` (`#/definitions/x`, `#/$defs/x`, JSON Pointer, RFC 6901). */
function resolveRef(root: SchemaObject, ref: string): SchemaObject | undefined {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = isObject(node) ? node[key] : undefined;
  }
  return isObject(node) ? node : undefined;
}

/** Bound of `$ref`/combinator nesting expanded at one input position (self-referential schemas). */
const MAX_DEPTH = 64;

/**
 * The schemas that apply to `value` at this point: the schema itself plus, conservatively, every
 * branch of `allOf`/`anyOf`/`oneOf` (a field sensitive in any branch is treated as sensitive) and
 * the target of `$ref`.
 */
function expand(root: SchemaObject, schema: unknown, depth: number, out: SchemaObject[]): void {
  if (!isObject(schema) || depth > MAX_DEPTH) return;
  out.push(schema);
  if (typeof schema.$ref === 'string') expand(root, resolveRef(root, schema.$ref), depth + 1, out);
  for (const keyword of ['allOf', 'anyOf', 'oneOf'] as const) {
    const branches = schema[keyword];
    if (Array.isArray(branches)) for (const branch of branches) expand(root, branch, depth + 1, out);
  }
}

function isSensitive(schemas: SchemaObject[]): boolean {
  return schemas.some((s) => s.writeOnly === true || s.format === 'password');
}

function walkInput(root: SchemaObject, schema: unknown, value: unknown, path: (string | number)[], sealed: SealedField[]): unknown {
  const schemas: SchemaObject[] = [];
  expand(root, schema, 0, schemas);
  if (schemas.length === 0) return value;
  if (isSensitive(schemas)) {
    sealed.push({ path, value });
    return REDACTED;
  }
  if (Array.isArray(value)) {
    return value.map((item: unknown, index) => {
      const itemSchemas = schemas.flatMap((s) => {
        if (Array.isArray(s.prefixItems) && index < s.prefixItems.length) return [s.prefixItems[index] as unknown];
        if (Array.isArray(s.items)) return index < s.items.length ? [s.items[index] as unknown] : [s.additionalItems];
        return [s.items];
      });
      return walkInput(root, { allOf: itemSchemas.filter(isObject) }, item, [...path, index], sealed);
    });
  }
  if (isObject(value)) {
    const copy: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const fieldSchemas = schemas.flatMap((s) => {
        const props = isObject(s.properties) ? s.properties : {};
        if (key in props) return [props[key]];
        const matched = isObject(s.patternProperties)
          ? Object.entries(s.patternProperties)
              .filter(([pattern]) => {
                try {
                  return new RegExp(pattern, 'u').test(key);
                } catch {
                  return false;
                }
              })
              .map(([, p]) => p)
          : [];
        return matched.length > 0 ? matched : [s.additionalProperties];
      });
      copy[key] = walkInput(root, { allOf: fieldSchemas.filter(isObject) }, v, [...path, key], sealed);
    }
    return copy;
  }
  return value;
}

/**
 * Split a run's input into what may be shown and what must be sealed.
 *
 * Every value whose JSON Schema says `writeOnly: true` or `format: "password"` (found through
 * `properties`, `patternProperties`, `additionalProperties`, `items`/`prefixItems`, every branch
 * of `allOf`/`anyOf`/`oneOf`, and local `$ref`s to `#/definitions/…` or `#/$defs/…`) is replaced
 * with {@link REDACTED} in `redacted` and returned, with its path, in `sealed`.
 *
 * @param schema - the definition's input schema (draft-07 or 2020-12).
 * @param input - the run input (not modified).
 */
export function splitSensitiveInput(schema: JsonSchema, input: unknown): { redacted: unknown; sealed: SealedField[] } {
  if (!isObject(schema)) return { redacted: input, sealed: [] };
  const sealed: SealedField[] = [];
  const redacted = walkInput(schema, schema, input, [], sealed);
  return { redacted, sealed };
}

/**
 * The real input again: `redacted` with every sealed field put back (a deep copy; the arguments
 * are not modified).
 */
export function restoreSensitiveInput(redacted: unknown, sealed: readonly SealedField[]): unknown {
  let result: unknown = structuredClone(redacted);
  for (const { path, value } of sealed) {
    if (path.length === 0) {
      result = structuredClone(value);
      continue;
    }
    let node: unknown = result;
    for (const key of path.slice(0, -1)) node = (node as Record<string | number, unknown> | undefined)?.[key];
    const last = path[path.length - 1];
    if (node !== null && typeof node === 'object' && last !== undefined) {
      (node as Record<string | number, unknown>)[last] = structuredClone(value);
    }
  }
  return result;
}

/** Every string inside the sealed values (to register with a {@link Redactor} or the logger). */
export function sealedStrings(sealed: readonly SealedField[]): string[] {
  const out: string[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out.push(String(v));
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(visit);
  };
  sealed.forEach((f) => visit(f.value));
  return out;
}
