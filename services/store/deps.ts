/**
 * What the read models and CRUD in `services/store/` need from their host process: the database
 * and the agent types registered in code. The engine's `EngineDeps` is a superset, so engine and
 * API code pass their deps unchanged.
 */
import type { Database } from '../../db/index.js';
import type { AgentType } from '../../agents/types.js';

export interface StoreDeps {
  database: Database;
  /**
   * Agent types of agents registered in code (tests), by name; catalog agents are per
   * organization in the database (`agents.ts`). Definitions are validated against both.
   */
  agentTypes: ReadonlyMap<string, AgentType>;
}
