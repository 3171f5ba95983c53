/**
 * Safety limits of definitions and expressions (issue 12 "safety rails"), process-wide. Defaults
 * match `lib/config.ts`; `connectEngine` applies the configured values
 * (`DEFINITION_MAX_BYTES`, `DEFINITION_MAX_STEPS`, `EXPRESSION_MAX_BYTES`,
 * `EXPRESSION_TIMEOUT_MS`).
 */

/** Limits applied while loading definitions and evaluating expressions. */
export interface DefinitionLimits {
  /** Largest definition source (YAML text or JSON body), in bytes (UTF-8); larger → 413. */
  maxBytes: number;
  /** Most steps in one definition; more → 400 `DEFINITION_INVALID` at `steps`. */
  maxSteps: number;
  /** Largest expression (the JSONata text of one `${{ }}`, `when`, `foreach`…), in bytes. */
  expressionMaxBytes: number;
  /** Wall-clock limit of one expression evaluation, in milliseconds. */
  expressionTimeoutMs: number;
}

/** The defaults (1 MiB, 1,000 steps, 4 KiB, 1,000 ms). */
export const DEFAULT_DEFINITION_LIMITS: Readonly<DefinitionLimits> = Object.freeze({
  maxBytes: 1024 * 1024,
  maxSteps: 1000,
  expressionMaxBytes: 4096,
  expressionTimeoutMs: 1000,
});

let current: Readonly<DefinitionLimits> = DEFAULT_DEFINITION_LIMITS;
const listeners: Array<() => void> = [];

/** Set the process's limits (fields not given keep their current value). */
export function configureDefinitionLimits(limits: Partial<DefinitionLimits>): void {
  current = Object.freeze({ ...current, ...limits });
  for (const listener of listeners) listener();
}

/** The process's current limits. */
export function definitionLimits(): Readonly<DefinitionLimits> {
  return current;
}

/** Call `listener` whenever the limits change (e.g. to drop compiled expressions). */
export function onDefinitionLimitsChange(listener: () => void): void {
  listeners.push(listener);
}
