/** The agent implementations Baton ships with, by name, and the default per agent type. */
import { a2aImplementation } from './a2a/a2a.js';
import { httpImplementation } from './api/http.js';
import { codemodImplementation } from './code/codemod.js';
import { goalPlannerImplementation } from './code/planner.js';
import { repoTestsImplementation } from './code/repo-tests.js';
import { llmImplementation } from './context/llm.js';
import { summarizerImplementation } from './context/summarizer.js';
import { functionImplementation } from './function/function.js';
import { subrunImplementation } from './orchestrator/subrun.js';
import { sqlImplementation } from './tool/sql.js';
import { AgentError } from '../lib/index.js';
import type { AgentImplementation, AgentSpec, AgentType } from './types.js';

/**
 * Every implementation by its `name`: `llm`, `summarizer` and `goal-planner` (context), `http`
 * and `a2a` (api; `a2a` calls a remote A2A agent), `sql` and `repo-tests` (tool), `function` and
 * `codemod` (function), `subrun` (orchestrator).
 */
export const implementations: ReadonlyMap<string, AgentImplementation> = new Map(
  (
    [
      llmImplementation,
      summarizerImplementation,
      httpImplementation,
      sqlImplementation,
      functionImplementation,
      subrunImplementation,
      a2aImplementation,
      codemodImplementation,
      repoTestsImplementation,
      goalPlannerImplementation,
    ] as AgentImplementation[]
  ).map((implementation) => [implementation.name, implementation] as const),
);

const DEFAULTS: Readonly<Record<AgentType, string>> = {
  context: 'llm',
  api: 'http',
  tool: 'sql',
  function: 'function',
  orchestrator: 'subrun',
};

/**
 * The implementation a catalog entry of `type` uses when it names none (also what generic
 * `type: http` / `type: context` steps run).
 * @returns `llm`, `http`, `sql`, `function` or `subrun`.
 */
export function defaultImplementation(type: AgentType): string {
  return DEFAULTS[type];
}

/**
 * The implementation of a catalog entry and its parsed config, ready for
 * `implementation.run(input, ctx, config)`.
 * @throws {AgentError} when the entry names an unknown implementation, or its stored config no
 *   longer parses (e.g. an entry saved by an older release).
 */
export function bindAgentSpec(spec: AgentSpec): { implementation: AgentImplementation; config: unknown } {
  const implementation = implementations.get(spec.implementation);
  if (!implementation) throw new AgentError(`agent ${spec.name}@${spec.version}: unknown implementation ${spec.implementation}`);
  const parsed = implementation.config.safeParse(spec.config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AgentError(
      `agent ${spec.name}@${spec.version}: config is invalid for ${spec.implementation}${issue ? ` (${issue.path.join('.') || 'config'}: ${issue.message})` : ''}`,
    );
  }
  return { implementation, config: parsed.data };
}

/**
 * The environment an agent sees as `ctx.env`: only the variables its entry allow-lists that are
 * set (and non-empty) in `source`.
 * @param allowed - the entry's `env:` names.
 * @param source - e.g. the worker's environment.
 */
export function allowListedEnv(allowed: readonly string[], source: Readonly<Record<string, string | undefined>>): Readonly<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const name of allowed) {
    const value = source[name];
    if (value !== undefined && value !== '') env[name] = value;
  }
  return Object.freeze(env);
}
