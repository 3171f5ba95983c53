/**
 * @deprecated The engine's named agents until it runs catalog entries itself (pinned
 * {@link AgentSpec}s + {@link implementations} + a full {@link AgentContext}).
 *
 * `postgres-agent`, `kpi-calculator` and `summarizer` are their catalog entries (latest version
 * in `agents/catalog/`) bound to their implementation. Because the engine's context does not yet
 * provide `functions` and `moduleCode`, `kpi-calculator` runs its module in the QuickJS sandbox
 * ({@link runInSandbox}) after validating the input against the module's `input` schema.
 * `marketing-swarm` is still the direct-POST agent of `api/marketing-swarm.ts` (the catalog
 * entry needs `ctx.http`). Delete this file, `api/marketing-swarm.ts` and `api/http-call.ts` once
 * the engine switches.
 */
import { AgentError } from '../lib/index.js';
import { marketingSwarm } from './api/marketing-swarm.js';
import { latestVersions, loadAgentCatalog } from './catalog.js';
import { runInSandbox } from './function/sandbox.js';
import { FunctionConfig } from './function/function.js';
import { loadModules, moduleCodeResolver, validateModuleInput, type StepModule } from './modules.js';
import { bindAgentSpec } from './registry.js';
import type { AgentContext, AgentSpec, AgentType, FunctionRunner, NamedAgent } from './types.js';

let catalog: Promise<ReadonlyMap<string, AgentSpec>> | undefined;
let modules: Promise<ReadonlyMap<string, StepModule>> | undefined;

/** Cached loads (a failed load is retried on the next call). */
function latestCatalog(): Promise<ReadonlyMap<string, AgentSpec>> {
  catalog ??= loadAgentCatalog()
    .then(latestVersions)
    .catch((err: unknown) => {
      catalog = undefined;
      throw err;
    });
  return catalog;
}
function shippedModules(): Promise<ReadonlyMap<string, StepModule>> {
  modules ??= loadModules().catch((err: unknown) => {
    modules = undefined;
    throw err;
  });
  return modules;
}

const MIB = 1024 * 1024;

/** A {@link FunctionRunner} over the QuickJS sandbox (no `ctx` inside: `main(input)` only). */
export const sandboxRunner: FunctionRunner = {
  run: (code, input, limits, context) =>
    runInSandbox(code, input, { timeoutMs: limits.timeoutMs, memoryBytes: limits.memoryMb * MIB, signal: context.signal, logger: context.logger }),
};

/** Context additions for the sandbox path of function agents. */
async function sandboxContext(ctx: AgentContext, spec: AgentSpec, input: unknown): Promise<AgentContext> {
  const loaded = await shippedModules();
  const config = FunctionConfig.parse(spec.config);
  const module = config.module === undefined ? undefined : loaded.get(config.module);
  if (module) validateModuleInput(module, input);
  return { ...ctx, functions: sandboxRunner, moduleCode: moduleCodeResolver(loaded) };
}

/** A named agent that runs the latest catalog entry `name` with its implementation. */
function catalogAgent(name: string, type: AgentType, description: string): NamedAgent {
  return {
    name,
    type,
    description,
    async run(input: unknown, ctx: AgentContext): Promise<unknown> {
      const spec = (await latestCatalog()).get(name);
      if (!spec) throw new AgentError(`agent ${name} is not in the catalog`);
      const { implementation, config } = bindAgentSpec(spec);
      const context = spec.implementation === 'function' ? await sandboxContext(ctx, spec, input) : ctx;
      return implementation.run(input, context, config);
    },
  };
}

/**
 * Every engine-visible named agent by its `name`: `postgres-agent` (tool), `kpi-calculator`
 * (function), `summarizer` (context), `marketing-swarm` (api).
 */
export const namedAgents: ReadonlyMap<string, NamedAgent> = new Map(
  [
    catalogAgent('postgres-agent', 'tool', 'Read-only statements over the market prices (prices_in_window, symbols, price_on_date, monthly_returns).'),
    catalogAgent('kpi-calculator', 'function', 'Per-symbol KPIs (total return, CAGR, volatility, max drawdown, best/worst month) of a price series.'),
    catalogAgent('summarizer', 'context', 'Summarises text, any JSON, or per-symbol KPIs.'),
    marketingSwarm,
  ].map((agent) => [agent.name, agent] as const),
);

/**
 * Agent type of every named agent (e.g. to route a step to the `agent-<type>` queue, or to
 * validate a definition without loading agent code paths).
 * @returns a new map, name → {@link AgentType}.
 */
export function agentTypesByName(): ReadonlyMap<string, AgentType> {
  return new Map([...namedAgents].map(([name, agent]) => [name, agent.type] as const));
}
