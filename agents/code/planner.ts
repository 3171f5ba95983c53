/**
 * `goal-planner` (type `context`): the `plan` stage of a code change. It turns goals written as
 * text into module applications of the learning library, `[{goal, module, options}]`.
 *
 * With an LLM endpoint (`LLM_BASE_URL`) the goals go to the model as one structured-output call
 * (the JSON Schema below, modules limited to the entry's `modules`). Without one, a
 * **deterministic rule-based planner** (`planner: "rules"`) reads each goal with fixed patterns:
 * - "rename `A` to `B`" (also `as`/`into`, quotes or backticks optional) → `rename-symbol@1 {from: A, to: B}`
 * - "convert require to import", "migrate CommonJS to ES modules", "require → import" → `require-to-import@1 {}`
 * `goals` has one entry per input goal, in input order (so a fan-out over `input.goals` finds its
 * plan at the same index); a goal no rule (or the model) understands gets `module: null` and a
 * `reason`, and is also listed in `unplanned`. When no goal at all can be planned the step fails
 * with a ValidationError naming `input.goals`.
 *
 * Input: `{goals: [text], paths?: [repository paths]}`. Output: `{planner: "rules" | "llm",
 * provider, label, goals: [{goal, module, options, reason?}], unplanned: [{goal, reason}]}`.
 */
import { z } from 'zod';
import { ValidationError } from '../../lib/index.js';
import { complete } from '../context/llm.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { parseInput } from './codemod.js';

/** The entry's `config:`: the modules the planner may choose from. */
export const PlannerConfig = z
  .object({
    modules: z.array(z.string()).min(1).default(['rename-symbol@1', 'require-to-import@1']),
  })
  .strict();
export type PlannerConfig = z.infer<typeof PlannerConfig>;

const PlannerInput = z
  .object({
    goals: z.array(z.string().min(1).max(2000)).min(1).max(50),
    paths: z.array(z.string()).max(10_000).optional(),
  })
  .strict();

/** One goal's module application (`module: null` when it could not be planned, with `reason`). */
export interface PlannedGoal {
  goal: string;
  module: string | null;
  options: Record<string, unknown>;
  reason?: string;
}

/** The plan. */
export interface GoalPlan {
  planner: 'rules' | 'llm';
  provider: string;
  /** What made the plan, for people reading the run. */
  label: string;
  goals: PlannedGoal[];
  unplanned: Array<{ goal: string; reason: string }>;
}

const IDENT = '[A-Za-z_$][A-Za-z0-9_$]*';
const RENAME = new RegExp(`\\brename\\s+(?:the\\s+)?(?:symbol\\s+|function\\s+|identifier\\s+|variable\\s+)?[\`'"]?(${IDENT})[\`'"]?\\s+(?:to|as|into)\\s+[\`'"]?(${IDENT})[\`'"]?`, 'i');
const REQUIRE_TO_IMPORT = /\b(require\s*(\(\))?\s*(to|→|->|into)\s*(import|esm)|commonjs\s*(to|→|->|into)\s*(es\s*modules?|esm|import)|(convert|migrate|turn|switch)\b.*\brequire\b.*\bimports?\b)/i;

/**
 * The deterministic rule-based planner (no model): see the module comment for its rules.
 * @param modules - the modules it may use (a rule whose module is not among them does not apply).
 */
export function planByRules(goals: readonly string[], modules: readonly string[]): GoalPlan {
  const planned: PlannedGoal[] = [];
  const unplanned: GoalPlan['unplanned'] = [];
  for (const goal of goals) {
    const rename = RENAME.exec(goal);
    if (rename?.[1] && rename[2] && modules.includes('rename-symbol@1')) {
      planned.push({ goal, module: 'rename-symbol@1', options: { from: rename[1], to: rename[2] } });
    } else if (REQUIRE_TO_IMPORT.test(goal) && modules.includes('require-to-import@1')) {
      planned.push({ goal, module: 'require-to-import@1', options: {} });
    } else {
      const reason = 'no rule matches (rules: "rename `A` to `B`", "convert require to import")';
      planned.push({ goal, module: null, options: {}, reason });
      unplanned.push({ goal, reason });
    }
  }
  return {
    planner: 'rules',
    provider: 'local',
    label: 'deterministic rule-based planner (no LLM endpoint configured)',
    goals: planned,
    unplanned,
  };
}

function planSchema(modules: readonly string[]): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['goals', 'unplanned'],
    properties: {
      goals: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['goal', 'module', 'options'],
          properties: {
            goal: { type: 'string' },
            module: { type: 'string', enum: [...modules] },
            options: { type: 'object' },
          },
        },
      },
      unplanned: {
        type: 'array',
        items: { type: 'object', additionalProperties: false, required: ['goal', 'reason'], properties: { goal: { type: 'string' }, reason: { type: 'string' } } },
      },
    },
  };
}

const SYSTEM = [
  'You plan code changes as applications of codemod modules. Modules:',
  '- rename-symbol@1, options {"from": identifier, "to": identifier}: renames a module-level identifier and its references across files.',
  '- require-to-import@1, options {}: converts CommonJS require/module.exports to ES import/export.',
  'For each goal choose one module and its options; list goals no module can do under "unplanned" with a reason.',
].join('\n');

export const goalPlannerImplementation: AgentImplementation<PlannerConfig> = {
  name: 'goal-planner',
  type: 'context',
  description: 'Plans code-change goals as codemod module applications (an LLM with structured output, or a deterministic rule-based planner).',
  config: PlannerConfig,
  async run(input: unknown, ctx: AgentContext, config: PlannerConfig): Promise<GoalPlan> {
    const request = parseInput(PlannerInput, input, 'goal-planner');
    let plan: GoalPlan;
    if (ctx.llm.baseUrl) {
      const result = await complete(
        {
          messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: JSON.stringify({ goals: request.goals, paths: request.paths ?? [] }) },
          ],
          model: ctx.llm.model,
          temperature: 0,
          schema: planSchema(config.modules),
          schemaName: 'code_change_plan',
        },
        ctx,
      );
      const json = result.json as { goals: Array<{ goal: string; module: string; options: Record<string, unknown> }>; unplanned: GoalPlan['unplanned'] };
      const goals = request.goals.map((goal, i): PlannedGoal => {
        const found = json.goals.find((g) => g.goal === goal) ?? (json.goals.length === request.goals.length ? json.goals[i] : undefined);
        if (found) return { goal, module: found.module, options: found.options };
        const reason = json.unplanned.find((u) => u.goal === goal)?.reason ?? 'the model planned nothing for it';
        return { goal, module: null, options: {}, reason };
      });
      const unplanned = goals.flatMap((g) => (g.module === null ? [{ goal: g.goal, reason: g.reason ?? '' }] : []));
      plan = { planner: 'llm', provider: result.provider, label: `LLM planner (${result.model})`, goals, unplanned };
    } else {
      plan = planByRules(request.goals, config.modules);
    }
    if (plan.goals.every((g) => g.module === null)) {
      const reasons = plan.unplanned.map((u) => `"${u.goal}": ${u.reason}`).join('; ');
      throw new ValidationError(`goal-planner: input.goals: no goal could be planned (${reasons})`, { field: 'input.goals' });
    }
    return plan;
  },
};
