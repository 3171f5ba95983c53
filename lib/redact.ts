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

/**
 * Finds many fixed strings in one left-to-right scan: candidates are bucketed by their first
 * {@link MIN_SUBSTRING_SECRET_CHARS} characters, so each position of the text costs one map
 * look-up whatever the number of strings (a regular expression with thousands of alternatives
 * would try each of them at every position). At one position the longest match wins.
 */
export class SubstringReplacer {
  private readonly buckets = new Map<string, string[]>();
  /** Which UTF-16 code units start some needle (a cheap filter before the map look-up). */
  private readonly starts = new Uint8Array(65536);

  /** @param needles - strings of at least {@link MIN_SUBSTRING_SECRET_CHARS} characters (shorter ones are ignored). */
  constructor(needles: Iterable<string>) {
    for (const needle of new Set(needles)) {
      if (needle.length < MIN_SUBSTRING_SECRET_CHARS) continue;
      const key = needle.slice(0, MIN_SUBSTRING_SECRET_CHARS);
      const bucket = this.buckets.get(key);
      if (bucket) bucket.push(needle);
      else this.buckets.set(key, [needle]);
      this.starts[needle.charCodeAt(0)] = 1;
    }
    for (const bucket of this.buckets.values()) bucket.sort((a, b) => b.length - a.length);
  }

  /** Whether there are no needles. */
  get isEmpty(): boolean {
    return this.buckets.size === 0;
  }

  /** `text` with every (non-overlapping, leftmost-longest) needle replaced by `replacement`. */
  replace(text: string, replacement: string = REDACTED): string {
    if (this.buckets.size === 0) return text;
    let out: string | undefined;
    let copied = 0;
    const last = text.length - MIN_SUBSTRING_SECRET_CHARS;
    for (let i = 0; i <= last; i += 1) {
      if (this.starts[text.charCodeAt(i)] === 0) continue;
      const bucket = this.buckets.get(text.slice(i, i + MIN_SUBSTRING_SECRET_CHARS));
      if (!bucket) continue;
      const hit = bucket.find((needle) => text.startsWith(needle, i));
      if (hit === undefined) continue;
      out = (out ?? '') + text.slice(copied, i) + replacement;
      i += hit.length - 1;
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
        if (Array.isArray(s.prefixItems) && index < s.prefixItems.length) return [s.prefixItems[index]];
        if (Array.isArray(s.items)) return index < s.items.length ? [s.items[index]] : [s.additionalItems];
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
