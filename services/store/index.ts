/** Read models and CRUD outside the run lifecycle: named agents, secrets, assets, deliverables, dry-run plans. */
export * from './agents.js';
export * from './secrets.js';
export * from './assets.js';
export * from './plan.js';
