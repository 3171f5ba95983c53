/**
 * `function` (type `function`): runs function code (`function main(input, ctx)`, may be async)
 * in the worker's function runtime (`ctx.functions`, worker threads).
 *
 * Config: exactly one of `module: 'name@version'` (a step module, resolved with
 * `ctx.moduleCode`) or `code` (inline source), and `limits: {timeoutMs, memoryMb}` (defaults
 * {@link DEFAULT_FUNCTION_LIMITS}; the runtime bounds them by `FUNCTION_MAX_TIMEOUT_MS` /
 * `FUNCTION_MAX_MEMORY_MB`). The step input goes to `main` as is: validating it against the
 * module's `input` schema is the caller's business (see `validateModuleInput` in `modules.ts`).
 */
import { z } from 'zod';
import type { AgentContext, AgentImplementation, FunctionLimits } from '../types.js';
import { MODULE_REF_PATTERN } from '../modules.js';

/** Limits used when the config gives none: 5 s, 64 MiB. */
export const DEFAULT_FUNCTION_LIMITS: FunctionLimits = { timeoutMs: 5_000, memoryMb: 64 };

/** The entry's `config:`. */
export const FunctionConfig = z
  .object({
    module: z.string().regex(MODULE_REF_PATTERN, { error: 'expected a module reference name@version, e.g. kpi-metrics@1' }).optional(),
    code: z.string().min(1).max(1_000_000).optional(),
    limits: z
      .object({
        /** Wall-clock budget per call, in milliseconds. */
        timeoutMs: z.number().int().positive().max(3_600_000).default(DEFAULT_FUNCTION_LIMITS.timeoutMs),
        /** Isolate memory, in MiB. */
        memoryMb: z.number().int().positive().max(4096).default(DEFAULT_FUNCTION_LIMITS.memoryMb),
      })
      .strict()
      .default(DEFAULT_FUNCTION_LIMITS),
  })
  .strict()
  .refine((c) => (c.module === undefined) !== (c.code === undefined), { error: 'give exactly one of module or code', path: ['module'] });
export type FunctionConfig = z.infer<typeof FunctionConfig>;

/**
 * The `function` implementation: `ctx.functions.run(code, input, limits, ctx)`.
 * Throws what `ctx.moduleCode` (`ValidationError` for an unknown module) and `ctx.functions.run`
 * throw (`TimedOutError`, `CancelledError`, `OutputTooLargeError`, `MissingSecretError`,
 * `AgentError`).
 */
export const functionImplementation: AgentImplementation<FunctionConfig> = {
  name: 'function',
  type: 'function',
  description: 'Runs function code (a step module or inline code) in the worker-thread function runtime.',
  config: FunctionConfig,
  async run(input: unknown, ctx: AgentContext, config: FunctionConfig): Promise<unknown> {
    const code = config.code ?? (await ctx.moduleCode(config.module ?? ''));
    return ctx.functions.run(code, input, config.limits, ctx);
  },
};
