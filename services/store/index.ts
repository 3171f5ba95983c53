/** Read models and CRUD outside the run lifecycle: secrets, assets, deliverables. */
export * from './secrets.js';
export * from './assets.js';
