export * from './config.js';
export * from './errors.js';
export * from './logger.js';
export * from './shutdown.js';
export * from './paths.js';
export * from './duration.js';
export * from './infrastructure.js';
