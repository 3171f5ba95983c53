/** What worker processors need: the engine's dependencies plus the agent layer. */
import type { AgentImplementation, FunctionRunner, NamedAgent, StepModule } from '../agents/index.js';
import type { OutboundHttp } from '../lib/index.js';
import type { EngineDeps } from '../services/engine/index.js';

export interface WorkerDeps extends EngineDeps {
  /** Agents registered in code by name (tests; catalog agents come from the database). */
  agents: ReadonlyMap<string, NamedAgent>;
  /** Agent implementations by name (`llm`, `http`, `sql`, `function`, …). */
  implementations: ReadonlyMap<string, AgentImplementation>;
  /** Step modules by `name@version`. */
  modules: ReadonlyMap<string, StepModule>;
  /** The function runtime (worker-thread pool). */
  functions: FunctionRunner;
  /** Outgoing HTTP under the outbound policy. */
  http: OutboundHttp;
}
