// Typed lint (`npm run lint`): ESLint's recommended rules plus typescript-eslint's
// recommended-type-checked set, with type information from the TypeScript project service
// (tsconfig.json). House rules on top: no floating or misused promises, no `any`.
import eslint from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', 'agents/modules/', '.demo/'] },
  {
    files: ['**/*.ts'],
    extends: [eslint.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      // Re-rejecting a caught `unknown` passes the original error on; it does not invent a non-Error.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `{ secret: _secret, ...rest }` omits a field; `_`-prefixed parameters are placeholders.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Fakes and stubs implement async interfaces without awaiting anything; that is fine there.
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    // Files being rewritten on another branch (issue 8, items 1-8): these findings are listed in
    // that work's report and are fixed there. Remove each entry when its file is lint-clean.
    //   services/engine/checkpoints.ts:136,296 and decisions.ts:121 unbound-method
    //     (`withRun(…, async ({ tx, emit }) => …)` destructures the run scope's `emit` method;
    //     run-scope.ts could declare it `emit: (…) => void` or `this: void`)
    //   services/engine/steps.ts:277 no-unsafe-return (`Array.isArray(unknown)` yields `any[]`)
    //   workers/checkpoint-processor.ts:66, step-processor.ts:214,288 no-unsafe-argument
    //     (BullMQ `Job<any>` handed to typed processors; the typed job catalog removes it)
    files: ['services/engine/checkpoints.ts', 'services/engine/decisions.ts'],
    rules: { '@typescript-eslint/unbound-method': 'off' },
  },
  {
    files: ['services/engine/steps.ts'],
    rules: { '@typescript-eslint/no-unsafe-return': 'off' },
  },
  {
    files: ['workers/checkpoint-processor.ts', 'workers/step-processor.ts'],
    rules: { '@typescript-eslint/no-unsafe-argument': 'off' },
  },
);
