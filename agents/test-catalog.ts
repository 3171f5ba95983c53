/**
 * Test helper: the shipped catalog entries run the way the engine runs them — the latest version
 * of an entry bound to its implementation with {@link bindAgentSpec} — and the real clients a
 * worker hands them: the worker-thread function runtime and the outbound HTTP client under the
 * outbound policy (loopback allowed, for the local fake servers). Not used by production code.
 */
import { createOutboundHttp, silentLogger, type Logger, type OutboundHttp } from '../lib/index.js';
import { latestVersions, loadAgentCatalog } from './catalog.js';
import { createFunctionRuntime, type FunctionRuntime } from './function/runtime.js';
import { bindAgentSpec } from './registry.js';
import type { AgentContext, AgentImplementation, AgentSpec } from './types.js';

/** A catalog entry bound to its implementation. */
export interface BoundAgent {
  spec: AgentSpec;
  implementation: AgentImplementation;
  config: unknown;
  /** `implementation.run(input, ctx, config)`. */
  run(input: unknown, ctx: AgentContext): Promise<unknown>;
}

/**
 * The latest shipped version of catalog entry `name`, bound to its implementation.
 * @throws Error when the catalog has no such entry; what {@link bindAgentSpec} throws.
 */
export async function catalogAgent(name: string): Promise<BoundAgent> {
  const spec = latestVersions(await loadAgentCatalog()).get(name);
  if (!spec) throw new Error(`test catalog: no agent ${name} in agents/catalog/`);
  const { implementation, config } = bindAgentSpec(spec);
  return { spec, implementation, config, run: (input, ctx) => implementation.run(input, ctx, config) };
}

/**
 * A real function runtime for tests: one thread, 30 s and 256 MiB at most per call, 1 MiB of
 * output. The caller closes it (`after(() => runtime.close())`).
 * @param logger - thread lifecycle warnings (default: silent).
 */
export function testFunctionRuntime(logger: Logger = silentLogger()): FunctionRuntime {
  return createFunctionRuntime({ threads: 1, maxTimeoutMs: 30_000, maxMemoryMb: 256, outputMaxBytes: 1_048_576, logger });
}

/** The real outbound HTTP client, with loopback allowed (the fakes listen on 127.0.0.1). */
export function loopbackHttp(): OutboundHttp {
  return createOutboundHttp({ allow: ['127.0.0.0/8', 'localhost'] });
}
