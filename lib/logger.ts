/**
 * pino JSON logger. One root per process, built by the entry file; everything else receives a
 * child logger (`logger.child({runId, stepId})`) as an argument.
 */
import { pino, type Logger } from 'pino';

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

/**
 * Create the process's root logger.
 * @param options.level - pino level name (`silent` disables output).
 * @param options.service - bound as `svc` on every line (`web`, `worker`, `release`, ...).
 */
export function createLogger(options: { level: string; service: string }): Logger {
  return pino({
    level: options.level,
    base: { svc: options.service, pid: process.pid },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that writes nothing (tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
