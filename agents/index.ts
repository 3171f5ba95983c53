/** Public surface of the agents module. */
export { namedAgents, agentTypesByName } from './registry.js';
export { runInSandbox, functionAgent } from './function/sandbox.js';
export type { SandboxLimits, FunctionAgentLimits, FunctionAgentOptions } from './function/sandbox.js';
export { createFunctionRuntime } from './function/runtime.js';
export type { FunctionRuntime, FunctionRuntimeOptions } from './function/runtime.js';
export { httpCall } from './api/http-call.js';
export type { HttpCallRequest, HttpCallResponse, HttpMethod } from './api/http-call.js';
export { parseRetryAfter } from './http-errors.js';
export { AGENT_TYPES } from './types.js';
export type { AgentContext, AgentType, LlmSettings, NamedAgent } from './types.js';
export type { KpiMonth, KpiOutput, SymbolKpis } from './function/kpi-calculator.js';
