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
   * Agent type of every named agent the deployment knows, by agent name (e.g. `summarizer` →
   * `context`). Definitions are validated against it (steps may only name these agents). The
   * entry file passes the registry's `agentTypesByName()`, so `services/` never loads agent code
   * (only the `AgentType` type).
   */
  agentTypes: ReadonlyMap<string, AgentType>;
}
