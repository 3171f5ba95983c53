/** What the engine needs from its host process (API or worker), injected by the entry file. */
import type { Config, Logger } from '../../lib/index.js';
import type { Database } from '../../db/index.js';
import type { Queues } from '../../queues/index.js';

export interface EngineDeps {
  config: Config;
  database: Database;
  queues: Queues;
  logger: Logger;
}
