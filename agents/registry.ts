/** The agent implementations Baton ships with, by name, and the default per agent type. */
import { httpImplementation } from './api/http.js';
import { llmImplementation } from './context/llm.js';
import { summarizerImplementation } from './context/summarizer.js';
import { functionImplementation } from './function/function.js';
import { subrunImplementation } from './orchestrator/subrun.js';
import { sqlImplementation } from './tool/sql.js';
import type { AgentImplementation, AgentType } from './types.js';

/**
 * Every implementation by its `name`: `llm` and `summarizer` (context), `http` (api), `sql`
 * (tool), `function` (function), `subrun` (orchestrator).
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
