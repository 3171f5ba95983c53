/**
 * The run engine: the one place where runs start, advance, decide and finish. The API
 * (`services/api/`) and the workers (`workers/`) both call it; neither holds engine logic.
 */
export type { EngineDeps } from './deps.js';
export { startRun, type StartRunRequest, type StartedRun } from './start-run.js';
export { beginStep, completeStep, failStep, failOrphanedStep, rerunFrom, reportProgress, isParentStep, type StepStart, type StepRecord, type AttemptRun } from './steps.js';
export { finalizeRun, APPROVAL_ABORTED, type FinalizeOutcome } from './finalize.js';
export {
  openCheckpoint,
  resolveCheckpoint,
  getApproval,
  scheduleReminders,
  remindApproval,
  approvalResponsesOf,
  REMIND_JOB,
  approvalNotice,
  mayReceiveLink,
  starterAudience,
  type LinkAudience,
  approvalSummary,
  promoteParked,
  SUPPORTED_DECISIONS,
  type CheckpointState,
} from './checkpoints.js';
export { decideApproval, type DecisionAuth, type DecisionRequest, type DecisionOutcome } from './decisions.js';
export { syncDefinitions, findDefinition, definitionById, type StoredDefinition, type SyncReport } from './definitions-store.js';
export {
  createDefinition,
  createDefinitionVersion,
  listDefinitions,
  definitionVersions,
  getDefinitionVersion,
  stepSummaries,
  type DefinitionBody,
  type DefinitionListItem,
  type DefinitionStepSummary,
  type DefinitionVersionItem,
  type DefinitionVersionView,
} from './definitions-store.js';
export { getRunView, runStatus, listEvents, getEvent, listApprovals, type RunEventView } from './queries.js';
export {
  listRuns,
  getRunManifest,
  RUN_STATUSES,
  MANIFEST_VERSION,
  type ListRunsOptions,
  type RunListItem,
  type RunStatus,
} from './queries.js';
export { TERMINAL_RUN_EVENTS, type RunEventType } from './run-scope.js';
export { webhookMessage, markWebhookDelivered, sweepWebhookOutbox } from './webhooks.js';
export { createIntegration, verifyIntegrationMessage, type IntegrationRow, type VerifiedMessage } from './integrations.js';
export { createApiKey, type CreatedApiKey } from './api-keys.js';
export { ensureStepJobs, reconcileRun, reconcileAll, type ReconcileReport } from './reconcile.js';
export { cancelRun, retryStep, skipStep, resumeRun, cancelChannel, type Actor, type InterventionResult } from './interventions.js';
export { advanceFanout, beginItem, finishItem, itemJobId, itemsOf, type ItemJobData, type FanoutState, type ItemStart } from './fanout.js';
export { advanceSubrun, advanceSubruns, type SubrunPlan, type SubrunState } from './subruns.js';
