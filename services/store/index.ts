/**
 * Read models and CRUD outside the run lifecycle: run, event and approval listings, stored
 * definitions, named agents, secrets, assets and deliverables, API keys, integrations. Nothing
 * here starts, advances or finishes a run (that is `services/engine/`), and nothing here imports
 * the engine.
 */
export type { StoreDeps } from './deps.js';
export * from './agents.js';
export * from './secrets.js';
export * from './assets.js';
export * from './approvals.js';
export * from './queries.js';
export * from './definitions-store.js';
export * from './api-keys.js';
export * from './integrations.js';
export * from './roles.js';
export * from './webhook-subscriptions.js';
export * from './observability.js';
export * from './a2a-tasks.js';
export * from './plan.js';
export * from './organizations.js';
