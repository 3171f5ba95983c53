/** Canonical JSON: object keys sorted, no whitespace, so equal values give equal text (hashing). */

/**
 * The canonical JSON text of a JSON value (`undefined` as `null`).
 * @param value - a JSON value (nesting bounded by the input guard, `lib/json-guard.ts`).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
