/**
 * pino JSON logger. One root per process, built by the entry file; everything else receives a
 * child logger (`logger.child({runId, stepId})`) as an argument.
 *
 * Secret values registered with {@link registerSensitiveValues} never reach a log line: pino's
 * `hooks.streamWrite` (pino ≥ 8, called with each serialized line just before it is written)
 * replaces each value, in its JSON-escaped form, and its base64 and URL-encoded forms, with
 * `[redacted]`.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { REDACTED, SubstringReplacer, secretForms } from './redact.js';

export type { Logger };

/** Paths never written to logs (credentials and signed tokens). */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  '*.apiKey',
  '*.password',
  '*.secret',
  '*.token',
  'config.auth',
];

/** Most values the process-wide registry holds; the least recently registered go first. */
export const MAX_SENSITIVE_VALUES = 10_000;

/** Registered values in least- to most-recently-registered order (a `Map` keeps insertion order). */
const sensitive = new Map<string, true>();
/** The scanner over the registry's forms, rebuilt on the first line after a change. */
let replacer: SubstringReplacer | undefined;

/**
 * Register secret values that must never appear in any log line of this process (API-created
 * secrets when loaded, sealed run-input fields). Re-registering a value marks it most recent;
 * beyond {@link MAX_SENSITIVE_VALUES} the least recently registered are forgotten. Values shorter
 * than 4 characters are ignored (see `MIN_SUBSTRING_SECRET_CHARS` in `redact.ts`).
 */
export function registerSensitiveValues(values: readonly string[]): void {
  let changed = false;
  for (const value of values) {
    if (value.length < 4) continue;
    if (sensitive.has(value)) sensitive.delete(value);
    else changed = true;
    sensitive.set(value, true);
  }
  while (sensitive.size > MAX_SENSITIVE_VALUES) {
    const oldest = sensitive.keys().next().value;
    if (oldest === undefined) break;
    sensitive.delete(oldest);
    changed = true;
  }
  if (changed) replacer = undefined;
}

/** Forget every registered value (tests). */
export function clearSensitiveValues(): void {
  sensitive.clear();
  replacer = undefined;
}

/** The string's form inside a JSON string literal. */
function jsonEscaped(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/**
 * One serialized log line with every registered value replaced by `[redacted]`. Only the
 * JSON-escaped forms are searched, so the line stays valid JSON.
 */
export function redactLogLine(line: string): string {
  if (sensitive.size === 0) return line;
  replacer ??= new SubstringReplacer([...sensitive.keys()].flatMap((v) => secretForms(v).map(jsonEscaped)));
  return replacer.replace(line, REDACTED);
}

/**
 * Create the process's root logger.
 * @param options.level - pino level name (`silent` disables output).
 * @param options.service - bound as `svc` on every line (`web`, `worker`, `release`, ...).
 * @param options.destination - where lines go (default stdout).
 */
export function createLogger(options: { level: string; service: string; destination?: DestinationStream }): Logger {
  const settings = {
    level: options.level,
    base: { svc: options.service, pid: process.pid },
    redact: { paths: REDACT, censor: REDACTED },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: { streamWrite: redactLogLine },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** A logger that writes nothing (tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
