/**
 * The code-change agents without the stack: the rule-based planner's rules, the merge of build
 * items, and repo-tests' child process (time limit, process group killed, report asset).
 */
import { expect } from 'chai';
import { rejection, testContext, type TestRecorder } from '../test-context.js';
import { planByRules } from './planner.js';
import { mergeBuilds, repoTestsImplementation, RepoTestsConfig, type RepoTestsOutput } from './repo-tests.js';
import { goalPlannerImplementation, PlannerConfig } from './planner.js';

const MODULES = ['rename-symbol@1', 'require-to-import@1'];

describe('code-change agents', function () {
  this.timeout(60_000);

  describe('rule-based planner', function () {
    it('understands rename and require-to-import goals, index for index, and lists the rest', function () {
      const plan = planByRules(
        ['rename `taxRate` to `vatRate`', "Rename the function 'load' as fetchAll", 'please convert require to import', 'migrate CommonJS to ES modules', 'make it faster'],
        MODULES,
      );
      expect(plan.planner).to.equal('rules');
      expect(plan.label).to.contain('deterministic rule-based planner');
      expect(plan.goals.map((g) => [g.module, g.options])).to.deep.equal([
        ['rename-symbol@1', { from: 'taxRate', to: 'vatRate' }],
        ['rename-symbol@1', { from: 'load', to: 'fetchAll' }],
        ['require-to-import@1', {}],
        ['require-to-import@1', {}],
        [null, {}],
      ]);
      expect(plan.unplanned).to.have.length(1);
      expect(plan.unplanned[0]?.goal).to.equal('make it faster');
    });

    it('fails naming input.goals when nothing can be planned, and without an LLM never calls one', async function () {
      const err = await rejection(goalPlannerImplementation.run({ goals: ['refactor everything'] }, testContext(), PlannerConfig.parse({})));
      expect(err.message).to.contain('input.goals').and.to.contain('refactor everything');
    });
  });

  describe('merging build items', function () {
    const base = { 'a.js': 'one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n', 'b.js': 'b\n' };
    it('rebases a second change of the same file onto the first', function () {
      const merged = mergeBuilds(base, [
        { module: 'm@1', goal: 'first', files: { 'a.js': 'ONE\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n' } },
        { module: 'm@1', goal: 'second', files: { 'a.js': 'one\ntwo\nthree\nfour\nfive\nsix\nseven\nEIGHT\n', 'b.js': 'B\n' } },
        null,
      ]);
      expect(merged.conflicts).to.deep.equal([]);
      expect(merged.files).to.deep.equal({ 'a.js': 'ONE\ntwo\nthree\nfour\nfive\nsix\nseven\nEIGHT\n', 'b.js': 'B\n' });
    });
    it('reports a conflict when both change the same lines', function () {
      const merged = mergeBuilds(base, [
        { module: 'm@1', goal: 'first', files: { 'a.js': 'uno\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n' } },
        { module: 'm@2', goal: 'second', files: { 'a.js': 'eins\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n' } },
      ]);
      expect(merged.conflicts).to.deep.equal([{ file: 'a.js', goal: 'second', module: 'm@2' }]);
      expect(merged.files['a.js']).to.match(/^uno/);
    });
  });

  describe('codemod', function () {
    it("checks the options against the module's JSON Schema before any code runs", async function () {
      const { codemodImplementation, CodemodConfig } = await import('./codemod.js');
      const err = await rejection(
        codemodImplementation.run({ repo: { files: { 'a.js': 'x' } }, module: 'rename-symbol@1', options: { from: 'a b', to: 'c' } }, testContext(), CodemodConfig.parse({})),
      );
      expect(err.message).to.contain('input.options.from');
    });
  });

  describe('repo-tests', function () {
    it("kills a test command that outlives its time limit, with its children, and reports it", async function () {
      const recorder: TestRecorder = { assets: [], deliverables: [], progress: [] };
      const marker = `baton-spin-${process.pid}-${Date.now()}`;
      const spin = `node -e "setInterval(() => {}, 1000)" ${marker}`;
      const files = { 'package.json': JSON.stringify({ scripts: { test: `${spin} & ${spin}` } }) };
      const output = (await repoTestsImplementation.run({ repo: { files }, builds: [], timeoutMs: 1500 }, testContext({}, recorder), RepoTestsConfig.parse({}))) as RepoTestsOutput;
      expect(output).to.include({ passed: false, timedOut: true });
      expect(output.diffAssetId).to.equal(null);
      expect(recorder.assets.map((a) => a.name)).to.deep.equal(['test-report.json']);
      const report = JSON.parse(Buffer.from(recorder.assets[0]?.data ?? []).toString('utf8')) as { timedOut: boolean; command: string };
      expect(report).to.include({ timedOut: true });
      const { execFileSync } = await import('node:child_process');
      const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(marker));
      expect(left, 'no process of the command group is left').to.deep.equal([]);
    });

    it('refuses a path that leaves the repository', async function () {
      const err = await rejection(repoTestsImplementation.run({ repo: { files: { '../escape.js': 'x' } }, builds: [] }, testContext(), RepoTestsConfig.parse({})));
      expect(err.message).to.contain('leaves the repository');
    });
  });
});
