/**
 * `subrun` (type `orchestrator`): starts a definition as child run(s) and maps their outputs.
 * The engine executes it (child runs are engine state); this module holds the config schema.
 *
 * Config:
 * - `definition`: the child definition's slug; `version`: pin a version (default: the latest
 *   when the parent step starts, recorded with the step);
 * - `foreach` (optional): JSONata over the step input (`$` is the step input) yielding a list:
 *   one child run per item, all started at once and run in parallel (each child's own steps
 *   are bounded by their definitions; there is no cap on the number of children);
 * - `input` (optional): the child's run input, a mapping whose strings may hold `${{ <jsonata> }}`
 *   templates evaluated with `input` (the step input), `item` and `index` (with `foreach`).
 *   Default: the step input (without `foreach`) or the item (with it);
 * - `output` (optional): JSONata evaluated over `{input, output}` (without `foreach`: the step
 *   input and the child's output) or `{input, outputs}` (with `foreach`: the child outputs in
 *   item order). Default: the child output, or the list of child outputs.
 */
import jsonata from 'jsonata';
import { z } from 'zod';
import { AgentError } from '../../lib/index.js';
import type { AgentImplementation } from '../types.js';

const SLUG = /^[a-z][a-z0-9-]*$/;

/** A JSONata expression that compiles. */
const jsonataText = z
  .string()
  .min(1)
  .max(20_000)
  .superRefine((text, issue) => {
    try {
      jsonata(text);
    } catch (err) {
      const message = (err as { message?: unknown }).message;
      issue.addIssue({ code: 'custom', message: `invalid JSONata: ${typeof message === 'string' ? message : String(err)}` });
    }
  });

/** The entry's `config:`. */
export const SubrunConfig = z
  .object({
    definition: z.string().regex(SLUG, { error: 'expected a definition slug' }),
    version: z.number().int().positive().max(2_147_483_647).optional(),
    foreach: jsonataText.optional(),
    input: z.unknown().optional(),
    output: jsonataText.optional(),
  })
  .strict();
export type SubrunConfig = z.infer<typeof SubrunConfig>;

/** The `subrun` implementation. `run` always throws: the engine runs orchestrator agents. */
export const subrunImplementation: AgentImplementation<SubrunConfig> = {
  name: 'subrun',
  type: 'orchestrator',
  description: 'Runs a definition as child run(s) (optionally one per item, in parallel) and maps their outputs; executed by the engine.',
  config: SubrunConfig,
  run(): Promise<never> {
    return Promise.reject(new AgentError('orchestrator agents run in the engine (subrun), not in an agent worker'));
  },
};
