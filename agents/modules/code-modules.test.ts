/**
 * The learning library's modules (rename-symbol@1, require-to-import@1, no-forbidden-imports@1)
 * on fixture files, run as steps run them: the real worker-thread function runtime, code from
 * `ctx.moduleCode`, the codekit bundle (`ctx.require('codekit')`) built by `npm run build`.
 */
import { expect } from 'chai';
import type { FunctionRuntime } from '../function/runtime.js';
import { loadModules, moduleCodeResolver, validateModuleInput, type StepModule } from '../modules.js';
import { testFunctionRuntime } from '../test-catalog.js';
import { rejection, testContext } from '../test-context.js';
import type { AgentContext } from '../types.js';

interface CodemodOutput {
  files: Record<string, string>;
  changed: string[];
  skipped: Array<{ file: string; reason: string; line?: number }>;
}
interface Finding {
  rule: string;
  file: string;
  line: number;
  column: number;
  message: string;
}

describe('learning library modules (function runtime)', function () {
  let modules: ReadonlyMap<string, StepModule>;
  let runtime: FunctionRuntime;
  let ctx: AgentContext;
  before(async function () {
    modules = await loadModules();
    runtime = testFunctionRuntime();
    ctx = testContext({ functions: runtime, moduleCode: moduleCodeResolver(modules) });
  });
  after(async function () {
    await runtime?.close();
  });

  async function run<T>(ref: string, input: unknown): Promise<T> {
    const module = modules.get(ref);
    if (!module) throw new Error(`no module ${ref}`);
    validateModuleInput(module, input);
    return (await ctx.functions.run(await ctx.moduleCode(ref), input, { timeoutMs: 30_000, memoryMb: 256 }, ctx)) as T;
  }

  describe('rename-symbol@1', function () {
    const files = {
      'src/money.js': [
        "export const RATE = 0.2; // taxRate is mentioned here",
        'export function taxRate(amount) {',
        '  return amount * RATE;',
        '}',
        'export { taxRate as legacyTax };',
        '',
      ].join('\n'),
      'src/cart.js': [
        "import { taxRate } from './money.js';",
        "import { taxRate as external } from 'tax-lib';",
        '',
        'export function total(items) {',
        '  const sum = items.reduce((acc, item) => acc + item.price, 0);',
        "  const label = 'taxRate';",
        '  const report = { taxRate };',
        '  return { sum, tax: taxRate(sum), label, config: report.taxRate, ext: external };',
        '}',
        '',
        'function shadow(taxRate) {',
        '  return taxRate * 2;',
        '}',
        'export { shadow };',
        '',
      ].join('\n'),
      'src/legacy.cjs': [
        "const { taxRate } = require('./money.js');",
        "const money = require('./money.js');",
        'module.exports = { taxRate, twice: (x) => money.taxRate(x) * 2 };',
        '',
      ].join('\n'),
      'README.md': 'taxRate docs\n',
    };

    it('renames the declaration and its references across files, not strings, shadowing locals or other properties', async function () {
      const out = await run<CodemodOutput>('rename-symbol@1', { files, options: { from: 'taxRate', to: 'computeTax' } });
      expect(out.changed).to.deep.equal(['src/cart.js', 'src/legacy.cjs', 'src/money.js']);
      expect(out.files['src/money.js']).to.equal(
        [
          "export const RATE = 0.2; // taxRate is mentioned here",
          'export function computeTax(amount) {',
          '  return amount * RATE;',
          '}',
          'export { computeTax as legacyTax };',
          '',
        ].join('\n'),
      );
      const cart = out.files['src/cart.js'] ?? '';
      expect(cart).to.contain("import { computeTax } from './money.js';");
      expect(cart, 'an external package keeps its export name').to.contain("import { taxRate as external } from 'tax-lib';");
      expect(cart).to.contain("const label = 'taxRate';");
      expect(cart, 'the local object keeps its key').to.contain('const report = { taxRate: computeTax };');
      expect(cart).to.contain('tax: computeTax(sum)');
      expect(cart, 'an unrelated property is left').to.contain('config: report.taxRate');
      expect(cart, 'a parameter shadowing it is another symbol').to.contain('function shadow(taxRate) {\n  return taxRate * 2;');
      const legacy = out.files['src/legacy.cjs'] ?? '';
      expect(legacy).to.contain("const { computeTax } = require('./money.js');");
      expect(legacy).to.contain('module.exports = { computeTax,');
      expect(legacy, 'a member of a required project module is the same symbol').to.contain('money.computeTax(x)');
      expect(out.files, 'non-source files are untouched').to.not.have.property('README.md');
    });

    it('leaves files without the symbol unchanged and refuses a name that is already bound', async function () {
      const none = await run<CodemodOutput>('rename-symbol@1', { files, options: { from: 'nothingHere', to: 'other' } });
      expect(none.changed).to.deep.equal([]);
      const err = await rejection(run('rename-symbol@1', { files, options: { from: 'taxRate', to: 'RATE' } }));
      expect(err.message).to.contain('src/money.js').and.to.contain('RATE is already declared');
    });

    it('rejects options outside its JSON Schema before any code runs', function () {
      const module = modules.get('rename-symbol@1');
      if (!module) throw new Error('missing');
      expect(() => validateModuleInput(module, { files, options: { from: 'a b', to: 'c' } })).to.throw(/options\.from/);
      expect(() => validateModuleInput(module, { files, options: { from: 'a' } })).to.throw(/to/);
    });
  });

  describe('require-to-import@1', function () {
    const files = {
      'lib/util.js': "function add(a, b) { return a + b; }\nexports.add = add;\nexports.zero = 0;\n",
      'lib/index.js': [
        "'use strict';",
        "const path = require('node:path');",
        "const { add, zero: nothing } = require('./util');",
        "const join = require('node:path').join;",
        "require('./side-effect');",
        '',
        'function lazy() {',
        "  return require('node:os');",
        '}',
        'module.exports = { add, nothing, lazy, path, join };',
        '',
      ].join('\n'),
      'lib/side-effect.js': 'globalThis.loaded = true;\n',
      'lib/answer.js': 'module.exports = 42;\n',
    };

    it('converts top-level requires and exports and lists what it left', async function () {
      const out = await run<CodemodOutput>('require-to-import@1', { files, options: {} });
      expect(out.changed).to.deep.equal(['lib/answer.js', 'lib/index.js', 'lib/util.js']);
      const index = out.files['lib/index.js'] ?? '';
      expect(index).to.contain("import path from 'node:path';");
      expect(index).to.contain("import { add, zero as nothing } from './util.js';");
      expect(index).to.contain("import { join } from 'node:path';");
      expect(index).to.contain("import './side-effect.js';");
      expect(index).to.contain('export { add, nothing, lazy, path, join };');
      expect(index, 'a nested require stays').to.contain("return require('node:os');");
      expect(out.skipped).to.deep.include({ file: 'lib/index.js', line: 8, reason: 'require() inside a function' });
      expect(out.files['lib/util.js']).to.contain('export { add };').and.to.contain('export const zero = 0;');
      expect(out.files['lib/answer.js']).to.equal('export default 42;\n');
    });

    it('keeps exports when told to', async function () {
      const out = await run<CodemodOutput>('require-to-import@1', { files, options: { exports: false, extensions: false } });
      expect(out.files['lib/index.js']).to.contain("from './util';").and.to.contain('module.exports = {');
      expect(out.changed).to.not.include('lib/answer.js');
    });
  });

  describe('no-forbidden-imports@1', function () {
    it('reports every form of importing a forbidden module at its file, line and column', async function () {
      const files = {
        'src/a.ts': "import type { X } from './x';\nimport _ from 'lodash';\nimport fp from 'lodash/fp';\nexport * from 'left-pad';\n",
        'src/b.js': "const ok = require('fs');\nconst bad = require(\"request\");\nconst lazy = () => import('lodash');\n",
        'src/c.js': "const s = 'lodash'; // a string, not an import\n",
      };
      const out = await run<{ findings: Finding[] }>('no-forbidden-imports@1', { files, options: { forbidden: ['lodash', 'request', 'left-pad'] } });
      expect(out.findings.map((f) => `${f.file}:${f.line}:${f.column} ${f.rule}`)).to.deep.equal([
        'src/a.ts:2:15 no-forbidden-imports',
        'src/a.ts:3:16 no-forbidden-imports',
        'src/a.ts:4:15 no-forbidden-imports',
        'src/b.js:2:21 no-forbidden-imports',
        'src/b.js:3:27 no-forbidden-imports',
      ]);
      expect(out.findings[1]?.message).to.equal('import of "lodash/fp" is forbidden (lodash is)');
    });

    it('reports a file it cannot parse as a parse finding', async function () {
      const out = await run<{ findings: Finding[] }>('no-forbidden-imports@1', { files: { 'bad.js': 'const = ;\n' }, options: { forbidden: ['x'] } });
      expect(out.findings).to.have.length(1);
      expect(out.findings[0]).to.include({ rule: 'parse', file: 'bad.js', line: 1 });
    });
  });
});
