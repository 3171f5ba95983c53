/**
 * The run engine: the one place where runs start, advance, decide and finish. The API
 * (`services/api/`) and the workers (`workers/`) both call it; neither holds engine logic.
 * Read models and CRUD (run and event listings, definitions, API keys, integrations) are in
 * `services/store/`.
 */
export { connectEngine, type EngineDeps } from './deps.js';
export { startRun, type StartRunRequest, type StartedRun } from './start-run.js';
export { assertRunInput, requestFingerprint } from './run-request.js';
export { beginStep, completeStep, failStep, failOrphanedStep, rerunFrom, reportProgress, isParentStep, type StepStart, type StepRecord, type AttemptRun } from './steps.js';
export { claimDeferred, type DeferredClaim } from './hot-path.js';
export { finalizeRun, APPROVAL_ABORTED, type FinalizeOutcome } from './finalize.js';
export {
  openCheckpoint,
  resolveCheckpoint,
  scheduleReminders,
  remindApproval,
  approvalNotice,
  mayReceiveLink,
  starterAudience,
  type LinkAudience,
  promoteParked,
  checkpointAlreadyFinished,
  SUPPORTED_DECISIONS,
  type CheckpointState,
} from './checkpoints.js';
export { decideApproval, type DecisionAuth, type DecisionClient, type DecisionRequest, type DecisionOutcome } from './decisions.js';
export * from './statuses.js';
export { TERMINAL_RUN_EVENTS, type RunEventType } from './run-scope.js';
export {
  enqueueWebhooks,
  deliverRunWebhooks,
  sweepWebhookOutbox,
  redeliverWebhook,
  forgetSubscriptionCache,
  MAX_ATTEMPTS as WEBHOOK_MAX_ATTEMPTS,
  type DeliveryReport,
  type WebhookMessage,
} from './webhooks.js';
export { approvalForToken } from './approval-page.js';
export { ensureStepJobs, reconcileRun, reconcileAll, type ReconcileReport } from './reconcile.js';
export { cancelRun, retryStep, skipStep, resumeRun, type Actor, type InterventionResult } from './interventions.js';
export { advanceFanout, beginItem, finishItem, itemsOf, type FanoutState, type ItemStart } from './fanout.js';
export { advanceSubrun, advanceSubruns, type SubrunPlan, type SubrunState } from './subruns.js';
export { openAgentApproval, awaitAgentApproval, requestAgentApproval, ROUND_STRIDE, type AgentApprovalTarget } from './agent-approvals.js';
