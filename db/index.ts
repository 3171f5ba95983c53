export * as schema from './schema.js';
export * from './schema.js';
export * from './client.js';
export * from './statuses.js';
export * from './migrate.js';
export * from './seed.js';
