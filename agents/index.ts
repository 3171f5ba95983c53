/** Public surface of the agents module. */
export { implementations, defaultImplementation, bindAgentSpec, allowListedEnv } from './registry.js';
export { parseAgentSource, parseAgentObject, loadAgentCatalog, loadAgentCatalogEntries, latestVersions, defaultCatalogDir, AGENT_NAME_PATTERN } from './catalog.js';
export {
  loadModules,
  parseModuleRef,
  moduleCodeResolver,
  validateModuleInput,
  defaultModulesDir,
  MODULE_REF_PATTERN,
} from './modules.js';
export type { StepModule } from './modules.js';
export type { CatalogEntry } from './catalog.js';
export { runInSandbox } from './function/sandbox.js';
export type { SandboxLimits } from './function/sandbox.js';
export { createFunctionRuntime } from './function/runtime.js';
export type { FunctionRuntime, FunctionRuntimeOptions } from './function/runtime.js';
export { parseRetryAfter } from './http-errors.js';
export { llmImplementation, complete, exampleForSchema } from './context/llm.js';
export type { LlmConfig, LlmInput, LlmOutput, LlmUsage, CompletionRequest, CompletionResult } from './context/llm.js';
export { summarizerImplementation } from './context/summarizer.js';
export type { SummarizerConfig, SummarizerOutput } from './context/summarizer.js';
export { httpImplementation } from './api/http.js';
export type { HttpConfig, HttpInput, HttpOutput } from './api/http.js';
export { sqlImplementation } from './tool/sql.js';
export type { SqlConfig, SqlOutput } from './tool/sql.js';
export { functionImplementation } from './function/function.js';
export type { FunctionConfig } from './function/function.js';
export { subrunImplementation } from './orchestrator/subrun.js';
export type { SubrunConfig } from './orchestrator/subrun.js';
export { AGENT_TYPES } from './types.js';
export type {
  AgentContext,
  AgentImplementation,
  AgentSpec,
  AgentType,
  AssetMeta,
  AssetRef,
  DeliverableInput,
  FunctionLimits,
  FunctionRunner,
  LlmSettings,
  NamedAgent,
} from './types.js';
export type { KpiMonth, KpiOutput, SymbolKpis } from './function/kpi-types.js';
export { a2aImplementation } from './a2a/a2a.js';
