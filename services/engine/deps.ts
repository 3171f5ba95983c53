/** What the engine needs from its host process (API or worker), injected by the entry file. */
import type { Config, Logger } from '../../lib/index.js';
import type { Database } from '../../db/index.js';
import type { Queues } from '../../queues/index.js';
import type { AgentType } from '../../agents/types.js';

export interface EngineDeps {
  config: Config;
  database: Database;
  queues: Queues;
  logger: Logger;
  /**
   * Agent types of agents registered in code (tests), by name. Catalog agents live per
   * organization in the database (`services/store/agents.ts`); definitions are validated against
   * both, so `services/` never loads agent code (only the `AgentType` type).
   */
  agentTypes: ReadonlyMap<string, AgentType>;
}
