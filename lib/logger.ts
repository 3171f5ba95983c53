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
/** Scanner over the JSON-escaped forms of the registered values, updated value by value. */
const replacer = new SubstringReplacer();

/** The string's form inside a JSON string literal. */
function jsonEscaped(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** The forms of a value searched for in log lines (only JSON-escaped ones: lines stay valid JSON). */
function logForms(value: string): string[] {
  return [...new Set(secretForms(value).map(jsonEscaped))];
}

/**
 * Register secret values that must never appear in any log line of this process (API-created
 * secrets when loaded, sealed run-input fields). Re-registering a value marks it most recent;
 * beyond {@link MAX_SENSITIVE_VALUES} the least recently registered are forgotten. Values shorter
 * than 4 characters are ignored (see `MIN_SUBSTRING_SECRET_CHARS` in `redact.ts`). Cost: a few
 * microseconds per new value (no rebuild of the scanner).
 */
export function registerSensitiveValues(values: readonly string[]): void {
  for (const value of values) {
    if (value.length < 4) continue;
    if (sensitive.delete(value)) {
      sensitive.set(value, true);
      continue;
    }
    sensitive.set(value, true);
    for (const form of logForms(value)) replacer.add(form);
  }
  while (sensitive.size > MAX_SENSITIVE_VALUES) {
    const oldest = sensitive.keys().next().value;
    if (oldest === undefined) break;
    sensitive.delete(oldest);
    for (const form of logForms(oldest)) replacer.delete(form);
  }
}

/** Forget every registered value (tests). */
export function clearSensitiveValues(): void {
  for (const value of sensitive.keys()) for (const form of logForms(value)) replacer.delete(form);
  sensitive.clear();
}

/**
 * One serialized log line with every registered value replaced by `[redacted]` (pino's
 * `hooks.streamWrite`).
 */
export function redactLogLine(line: string): string {
  return sensitive.size === 0 ? line : replacer.replace(line, REDACTED);
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
