/** The named agents Baton ships with, by name. */
import { marketingSwarm } from './api/marketing-swarm.js';
import { summarizer } from './context/summarizer.js';
import { kpiCalculator } from './function/kpi-calculator.js';
import { postgresAgent } from './tool/postgres-agent.js';
import type { AgentType, NamedAgent } from './types.js';

/**
 * Every named agent by its `name`: `postgres-agent` (tool), `kpi-calculator` (function),
 * `summarizer` (context), `marketing-swarm` (api).
 */
export const namedAgents: ReadonlyMap<string, NamedAgent> = new Map(
  [postgresAgent, kpiCalculator, summarizer, marketingSwarm].map((agent) => [agent.name, agent] as const),
);

/**
 * Agent type of every named agent (e.g. to route a step to the `agent-<type>` queue, or to
 * validate a definition without loading agent code paths).
 * @returns a new map, name → {@link AgentType}.
 */
export function agentTypesByName(): ReadonlyMap<string, AgentType> {
  return new Map([...namedAgents].map(([name, agent]) => [name, agent.type] as const));
}
