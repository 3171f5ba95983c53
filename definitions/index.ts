/**
 * Orchestration definitions: the YAML DSL (`schema.ts`), its loader (`load.ts`) with its
 * cross-field rules (`rules.ts`) and problem messages (`problems.ts`), the `needs` graph and DAG
 * helpers (`graph.ts`), the `${{ }}` expression evaluator (`expressions.ts`) and run-input
 * validation (`json-schema.ts`).
 */
export type {
  AgentStep,
  Approver,
  CheckpointDecision,
  CheckpointStep,
  CheckpointTimeoutAction,
  ConcurrencyPolicy,
  Definition,
  FunctionCodeStep,
  Mapping,
  OrchestratorStep,
  RetryPolicy,
  StepBase,
  StepKind,
  StepSpec,
  StepType,
} from './schema.js';
export { CHECKPOINT_DECISIONS, CHECKPOINT_TIMEOUT_ACTIONS, DEFAULTS, SLUG_PATTERN, STEP_ID_PATTERN, STEP_TYPES } from './schema.js';
export type { ExpressionScope, TemplatePart } from './expressions.js';
export {
  compileExpression,
  conditionExpression,
  evaluateCondition,
  evaluateExpression,
  evaluateMapping,
  isTruthy,
  parseTemplate,
  referencedSteps,
  referencedSecrets,
  renderTemplate,
  toPlainJson,
} from './expressions.js';
export { validateAgainstSchema, validateInput } from './json-schema.js';
export type { DefinitionLoadOptions, DefinitionProblem } from './load.js';
export { checkDefinitionSource, loadDefinitionsDir, parseDefinition, parseDefinitionObject } from './load.js';
export type { DefinitionLimits } from './limits.js';
export { configureDefinitionLimits, definitionLimits, DEFAULT_DEFINITION_LIMITS } from './limits.js';
export type { StepGraph } from './graph.js';
export { ancestorsOf, descendantsOf, successorsOf, topologicalOrder } from './graph.js';
