/**
 * The agent layer a worker process runs steps with: implementations, step modules, the function
 * runtime (worker-thread pool) and the outbound HTTP client. Built once per process by the
 * composition roots (`workers/main.ts`, the test stack).
 */
import { createFunctionRuntime, implementations, loadModules } from '../agents/index.js';
import { createOutboundHttp, type Config, type Logger } from '../lib/index.js';
import type { WorkerDeps } from './deps.js';

/** What {@link createAgentLayer} builds, plus `close()` (stops the function threads). */
export type AgentLayer = Pick<WorkerDeps, 'implementations' | 'modules' | 'functions' | 'http'> & { close(): Promise<void> };

/**
 * Build the agent layer from the configuration.
 * @throws {DefinitionError} when a step module under `agents/modules/` is invalid.
 */
export async function createAgentLayer(config: Config, logger: Logger): Promise<AgentLayer> {
  const modules = await loadModules();
  const functions = createFunctionRuntime({
    threads: config.functions.threads,
    maxTimeoutMs: config.functions.maxTimeoutMs,
    maxMemoryMb: config.functions.maxMemoryMb,
    outputMaxBytes: config.steps.outputMaxBytes,
    logger: logger.child({ component: 'function-runtime' }),
  });
  return {
    implementations,
    modules,
    functions,
    http: createOutboundHttp({ allow: config.outbound.allow }),
    close: () => functions.close(),
  };
}
