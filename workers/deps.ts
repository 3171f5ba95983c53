/** What worker processors need: the engine's dependencies plus the agents they may run. */
import type { NamedAgent } from '../agents/index.js';
import type { EngineDeps } from '../services/engine/index.js';

export interface WorkerDeps extends EngineDeps {
  /** Named agents by name (the registry in production; tests may add their own). */
  agents: ReadonlyMap<string, NamedAgent>;
}
