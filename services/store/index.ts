/** Read models and CRUD outside the run lifecycle: named agents, secrets, assets, deliverables. */
export * from './agents.js';
export * from './secrets.js';
export * from './assets.js';
export * from './a2a-tasks.js';
