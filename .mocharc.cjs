// Tests run TypeScript through tsx, against the real Redis and Postgres (see test/support/).
module.exports = {
  'node-option': ['import=tsx'],
  spec: ['test/**/*.test.ts', 'agents/**/*.test.ts', 'definitions/**/*.test.ts', 'lib/**/*.test.ts'],
  require: ['test/support/hooks.ts'],
  timeout: 60000,
  reporter: 'spec',
};
