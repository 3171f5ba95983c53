/** Human durations in definitions (`30s`, `15m`, `24h`, `7d`), parsed by the `ms` library. */
import ms from 'ms';

/**
 * Parse a duration such as `90s`, `15m`, `24h` or `7d` into milliseconds.
 * @returns the duration in milliseconds, or `undefined` if the text is not a positive duration.
 */
export function parseDurationMs(text: string): number | undefined {
  if (text.trim() === '') return undefined; // `ms('')` throws
  let value: unknown;
  try {
    value = ms(text as ms.StringValue);
  } catch {
    return undefined;
  }
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}
