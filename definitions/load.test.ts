import { mkdtemp, readFile, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { DefinitionError, ValidationError } from '../lib/index.js';
import type { AgentType } from '../agents/types.js';
import {
  ancestorsOf,
  descendantsOf,
  evaluateCondition,
  evaluateMapping,
  loadDefinitionsDir,
  parseDefinition,
  parseDefinitionObject,
  renderTemplate,
  successorsOf,
  topologicalOrder,
  validateInput,
  type CheckpointStep,
  type Definition,
  type DefinitionProblem,
  type ExpressionScope,
} from './index.js';

import { loadAgentCatalog } from '../agents/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = join(here, '__fixtures__');

const agents: ReadonlyMap<string, AgentType> = new Map<string, AgentType>([
  ['postgres-agent', 'tool'],
  ['kpi-calculator', 'function'],
  ['summarizer', 'context'],
  ['marketing-swarm', 'api'],
]);

async function loadKpi(): Promise<Definition> {
  const file = join(here, 'kpi-tracking.yaml');
  return parseDefinition(await readFile(file, 'utf8'), { file, agents });
}

/** Parse a fixture and return the DefinitionError it must throw. */
async function fixtureError(name: string): Promise<{ error: DefinitionError; file: string }> {
  const file = join(fixtures, name);
  const source = await readFile(file, 'utf8');
  try {
    parseDefinition(source, { file, agents });
  } catch (err: unknown) {
    expect(err).to.be.instanceOf(DefinitionError);
    return { error: err as DefinitionError, file };
  }
  throw new Error(`${name} loaded without error`);
}

/** Parse a YAML string expected to fail. */
function yamlError(source: string, file = 'inline.yaml'): DefinitionError {
  try {
    parseDefinition(source, { file, agents });
  } catch (err: unknown) {
    expect(err).to.be.instanceOf(DefinitionError);
    return err as DefinitionError;
  }
  throw new Error('definition loaded without error');
}

function problemsOf(error: DefinitionError): DefinitionProblem[] {
  return error.details?.['problems'] as DefinitionProblem[];
}

const HEADER = 'slug: inline\nversion: 1\nname: Inline\ninput: {type: object}\n';

function scope(input: unknown, steps: ExpressionScope['steps'] = {}): ExpressionScope {
  return { input, steps, run: { id: 'run-1', definition: 'kpi-tracking@1' } };
}

describe('definitions', () => {
  describe('kpi-tracking.yaml', () => {
    it('loads with the expected steps, order and defaults', async () => {
      const def = await loadKpi();
      expect(def.slug).to.equal('kpi-tracking');
      expect(def.version).to.equal(1);
      expect(def.file).to.match(/kpi-tracking\.yaml$/);
      expect(topologicalOrder(def)).to.deep.equal(['load', 'kpis', 'review', 'summary', 'publish']);
      expect(def.steps.map((s) => [s.id, s.kind, s.type])).to.deep.equal([
        ['load', 'agent', 'tool'],
        ['kpis', 'agent', 'function'],
        ['review', 'checkpoint', 'checkpoint'],
        ['summary', 'agent', 'context'],
        ['publish', 'agent', 'api'],
      ]);
    });

    it('parses durations to milliseconds and applies defaults', async () => {
      const def = await loadKpi();
      const review = def.steps.find((s): s is CheckpointStep => s.kind === 'checkpoint');
      expect(review).to.not.equal(undefined);
      expect(review?.timeoutMs).to.equal(86_400_000);
      expect(review?.onTimeout).to.equal('abort');
      expect(review?.retryStep).to.equal('kpis');
      expect(review?.decisions).to.deep.equal(['continue', 'retry', 'abort']);
      expect(review?.required).to.equal(1);
      expect(review?.selfApproval).to.equal(true);
      const summary = def.steps.find((s) => s.id === 'summary');
      expect(summary?.retry).to.deep.equal({ attempts: 3, backoffMs: 2000, maxDelayMs: 30_000 });
      const load = def.steps.find((s) => s.id === 'load');
      expect(load?.retry).to.deep.equal({ attempts: 1, backoffMs: 1000, maxDelayMs: 60_000 });
      expect(load?.onError).to.equal('fail');
      const publish = def.steps.find((s) => s.id === 'publish');
      expect(publish?.when).to.equal('$exists(input.publishUrl)');
    });

    it('answers DAG questions', async () => {
      const def = await loadKpi();
      expect([...ancestorsOf(def, 'summary')].sort()).to.deep.equal(['kpis', 'load', 'review']);
      expect(successorsOf(def, 'kpis')).to.deep.equal(['review']);
      expect([...descendantsOf(def, 'kpis')].sort()).to.deep.equal(['publish', 'review', 'summary']);
      expect(() => ancestorsOf(def, 'nope')).to.throw(DefinitionError, /no step "nope"/);
    });

    it('evaluates its step inputs, prompt and output', async () => {
      const def = await loadKpi();
      const s = scope(
        { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' },
        {
          load: { output: { rows: [{ symbol: 'AAPL', price: 1 }] }, status: 'succeeded' },
          kpis: { output: { kpis: { AAPL: { change: 0.5 } } }, status: 'succeeded' },
          summary: { output: { text: 'Up.', provider: 'local' }, status: 'succeeded' },
        },
      );
      const [load, , review, , publish] = def.steps;
      expect(await evaluateMapping(load?.with, s)).to.deep.equal({
        query: 'prices_in_window',
        params: { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' },
      });
      expect(await renderTemplate((review as CheckpointStep).prompt, s)).to.equal(
        'Review the KPIs for AAPL, MSFT (2005-01-01 to 2009-12-31) before the summary is written.',
      );
      expect(await evaluateCondition(publish?.when ?? '', s)).to.equal(false);
      expect(await evaluateMapping(def.output, s)).to.deep.equal({
        kpis: { AAPL: { change: 0.5 } },
        summary: { text: 'Up.', provider: 'local' },
      });
    });
  });

  describe('invalid definitions (fixtures)', () => {
    const cases: Array<{ fixture: string; line: number; column: number; rule: RegExp }> = [
      { fixture: 'yaml-syntax.yaml', line: 8, column: 23, rule: /YAML syntax error: Flow sequence/ },
      { fixture: 'missing-slug.yaml', line: 2, column: 1, rule: /missing required key "slug"/ },
      { fixture: 'unknown-key.yaml', line: 8, column: 5, rule: /step a: unknown key "retries"/ },
      { fixture: 'duplicate-step-id.yaml', line: 10, column: 9, rule: /duplicate step id "a"/ },
      { fixture: 'unknown-needs.yaml', line: 10, column: 19, rule: /step kpis: needs unknown step "lod"/ },
      { fixture: 'cycle.yaml', line: 11, column: 13, rule: /cycle: a → b → a/ },
      { fixture: 'unknown-agent.yaml', line: 7, column: 12, rule: /unknown agent "foo" \(known: kpi-calculator, marketing-swarm, postgres-agent, summarizer\)/ },
      { fixture: 'bad-duration.yaml', line: 8, column: 14, rule: /timeout must be a duration .*"5 parsecs"/ },
      { fixture: 'jsonata-syntax.yaml', line: 9, column: 13, rule: /with\.text: invalid expression .*Expected "\)"/ },
      {
        fixture: 'non-ancestor-reference.yaml',
        line: 13,
        column: 13,
        rule: /step kpis references steps\.summary, which is not among its needs/,
      },
      {
        fixture: 'checkpoint-retry-without-retry-step.yaml',
        line: 8,
        column: 5,
        rule: /step review: retryStep is required when decisions include retry/,
      },
      { fixture: 'bad-input-schema.yaml', line: 8, column: 13, rule: /input is not a valid JSON Schema: properties\.symbols\.type/ },
    ];

    for (const { fixture, line, column, rule } of cases) {
      it(`${fixture} → line ${line}: ${rule.source}`, async () => {
        const { error, file } = await fixtureError(fixture);
        const prefix = `${file}:${line}:${column}: `;
        expect(error.message.startsWith(prefix), `"${error.message}" should start with "${prefix}"`).to.equal(true);
        expect(error.message.slice(prefix.length)).to.match(rule);
        expect(error.code).to.equal('DEFINITION_INVALID');
        const [first] = problemsOf(error);
        expect(first).to.include({ file, line, column });
        expect(first?.message).to.match(rule);
      });
    }

    it('reports every problem in details.problems, in document order', () => {
      const error = yamlError(
        `${HEADER}steps:\n  - id: a\n    agent: nobody\n    needs: [zz]\n  - id: b\n    agent: summarizer\n    needs: [b]\n`,
      );
      const problems = problemsOf(error);
      expect(problems.map((p) => [p.line, p.message.replace(/ \(.*$/, '')])).to.deep.equal([
        [7, 'step a: unknown agent "nobody"'],
        [8, 'step a: needs unknown step "zz"'],
        [11, 'cycle: b → b'],
      ]);
      expect(error.message).to.match(/^inline\.yaml:7:\d+: step a: unknown agent "nobody".*; inline\.yaml:8:\d+: /);
      // Shape errors are reported before cross-field checks run.
      const shapeOnly = problemsOf(yamlError(`${HEADER}steps:\n  - id: b\n    agent: summarizer\n    extra: 1\n    onError: maybe\n`));
      expect(shapeOnly.map((p) => p.line)).to.deep.equal([8, 9]);
      expect(shapeOnly[1]?.message).to.equal('step b: onError must be one of fail, continue (got "maybe")');
    });
  });

  describe('other rules', () => {
    const cases: Array<{ name: string; steps: string; line: number; rule: RegExp }> = [
      {
        name: 'a tool type without an agent',
        steps: '  - id: a\n    type: tool\n',
        line: 6,
        rule: /step a: type tool needs an agent/,
      },
      {
        name: 'an agent whose type differs from the explicit type',
        steps: '  - id: a\n    agent: summarizer\n    type: api\n',
        line: 8,
        rule: /agent "summarizer" is a context agent, but the step says type api/,
      },
      {
        name: 'a checkpoint key on an agent step',
        steps: '  - id: a\n    agent: summarizer\n    prompt: hi\n',
        line: 8,
        rule: /unknown key "prompt" \(only valid on type: checkpoint steps\)/,
      },
      {
        name: 'a function step without code or module',
        steps: '  - id: a\n    type: function\n',
        line: 6,
        rule: /step a: a function step must have exactly one of code or module/,
      },
      {
        name: 'a function step with both code and module',
        steps: '  - id: a\n    type: function\n    module: kpi-metrics@1\n    code: "function main() {}"\n',
        line: 6,
        rule: /step a: a function step must have exactly one of code or module/,
      },
      {
        name: 'a malformed module reference',
        steps: '  - id: a\n    type: function\n    module: kpi-metrics\n',
        line: 8,
        rule: /step a: module must match .*got "kpi-metrics"/,
      },
      {
        name: 'an orchestrator step without run',
        steps: '  - id: a\n    type: orchestrator\n',
        line: 6,
        rule: /step a: missing required key "run"/,
      },
      {
        name: 'a retryStep that is not an ancestor',
        steps:
          '  - id: a\n    agent: summarizer\n  - id: b\n    agent: summarizer\n  - id: c\n    type: checkpoint\n    needs: [a]\n    prompt: ok?\n    decisions: [retry]\n    retryStep: b\n',
        line: 15,
        rule: /retryStep "b" is not an ancestor of c/,
      },
      {
        name: 'onTimeout retry without retryStep',
        steps: '  - id: a\n    type: checkpoint\n    prompt: ok?\n    onTimeout: retry\n',
        line: 6,
        rule: /retryStep is required when onTimeout is retry/,
      },
      {
        name: 'a reminder not shorter than the timeout',
        steps: '  - id: a\n    type: checkpoint\n    prompt: ok?\n    timeout: 1h\n    remind: [30m, 2h]\n',
        line: 10,
        rule: /remind 2h must be shorter than timeout 1h/,
      },
      {
        name: 'retry.attempts above 20',
        steps: '  - id: a\n    agent: summarizer\n    retry: {attempts: 21}\n',
        line: 8,
        rule: /step a: retry\.attempts must be at most 20 \(got 21\)/,
      },
      {
        name: 'a step id that is not an identifier',
        steps: '  - id: Load-Prices\n    agent: summarizer\n',
        line: 6,
        rule: /steps\[0\]: id must match/,
      },
      {
        name: 'an empty step list',
        steps: '  []\n',
        line: 6,
        rule: /steps must not be empty/,
      },
      {
        name: 'a when that mixes text and templates',
        steps: '  - id: a\n    agent: summarizer\n    when: "x ${{ true }}"\n',
        line: 8,
        rule: /step a: when: a condition must be one expression/,
      },
      {
        name: 'a modify schema that does not compile',
        steps: '  - id: a\n    type: checkpoint\n    prompt: ok?\n    modify:\n      type: object\n      required: yes\n',
        line: 11,
        rule: /step a: modify is not a valid JSON Schema: required must be array/,
      },
      {
        name: 'an output reference to an unknown step',
        steps: '  - id: a\n    agent: summarizer\noutput:\n  x: ${{ steps.b.output }}\n',
        line: 9,
        rule: /output references steps\.b, which is not a step/,
      },
    ];
    for (const { name, steps, line, rule } of cases) {
      it(`rejects ${name}`, () => {
        const error = yamlError(`${HEADER}steps:\n${steps}`);
        expect(error.message).to.match(new RegExp(`^inline\\.yaml:${line}:\\d+: `));
        expect(error.message).to.match(rule);
      });
    }

    it('accepts function, orchestrator and checkpoint steps with their options', () => {
      const def = parseDefinition(
        `${HEADER}steps:\n` +
          '  - id: calc\n    type: function\n    code: "function main(input) { return input; }"\n    limits: {timeout: 2s}\n' +
          '  - id: sub\n    type: orchestrator\n    needs: [calc]\n    run: {slug: other, version: 2}\n' +
          '  - id: gate\n    type: checkpoint\n    needs: [sub]\n    when: steps.sub.status = "succeeded"\n    prompt: Go?\n' +
          '    approvers: [{role: analyst}, {user: alice}]\n    remind: [1d]\n    required: 2\n    selfApproval: false\n' +
          '    modify: {type: object, properties: {note: {type: string}}}\n',
        { file: 'inline.yaml', agents },
      );
      const [calc, sub, gate] = def.steps;
      expect(calc).to.deep.include({ kind: 'function-code', type: 'function', limits: { timeoutMs: 2000, memoryMb: 64 } });
      expect(sub).to.deep.include({ kind: 'orchestrator', run: { slug: 'other', version: 2 } });
      expect(gate).to.deep.include({
        kind: 'checkpoint',
        when: 'steps.sub.status = "succeeded"',
        approvers: [{ role: 'analyst' }, { user: 'alice' }],
        decisions: ['continue', 'abort'],
        timeoutMs: 7 * 86_400_000,
        remindMs: [86_400_000],
        required: 2,
        selfApproval: false,
      });
      // Default output: the leaf steps' outputs keyed by id.
      expect(def.output).to.deep.equal({ gate: '${{ steps.gate.output }}' });
    });
  });

  describe('parseDefinitionObject (JSON bodies)', () => {
    it('validates like YAML and reports JSON paths', async () => {
      const def = await loadKpi();
      const body = JSON.parse(JSON.stringify({ ...def, file: undefined, steps: undefined })) as Record<string, unknown>;
      body['steps'] = [
        { id: 'load', agent: 'postgres-agent' },
        { id: 'kpis', agent: 'kpi-calculator', needs: ['lod'] },
      ];
      delete body['output'];
      try {
        parseDefinitionObject(body, { file: 'request body', agents });
        expect.fail('should have thrown');
      } catch (err: unknown) {
        expect(err).to.be.instanceOf(DefinitionError);
        expect((err as Error).message).to.match(/^request body: steps\[1\]\.needs\[0\]: step kpis: needs unknown step "lod"/);
      }
      const ok = parseDefinitionObject(
        { slug: 'json-def', version: 2, name: 'JSON', input: { type: 'object' }, steps: [{ id: 'a', agent: 'summarizer' }] },
        { file: 'request body', agents },
      );
      expect(ok.steps[0]).to.deep.include({ kind: 'agent', type: 'context', with: {}, needs: [] });
      expect(() => parseDefinitionObject({ slug: 'x' }, { file: 'b', agents })).to.throw(DefinitionError, /^b: missing required key "version"/);
    });
  });

  describe('expressions', () => {
    const s = scope(
      { symbols: ['AAPL'], from: '2005-01-01', count: 3, nested: { a: [1, 2] } },
      { load: { output: { rows: [{ symbol: 'AAPL', price: 10 }] }, status: 'succeeded' } },
    );

    it('returns a whole-value expression with its JSON type', async () => {
      expect(await evaluateMapping('${{ input.count }}', s)).to.equal(3);
      expect(await evaluateMapping('  ${{ input.nested }} ', s)).to.deep.equal({ a: [1, 2] });
      expect(await evaluateMapping('${{ input.count > 2 }}', s)).to.equal(true);
      expect(await evaluateMapping('${{ steps.load.output.rows }}', s)).to.deep.equal([{ symbol: 'AAPL', price: 10 }]);
    });

    it('keeps a one-element array an array', async () => {
      const value = await evaluateMapping('${{ input.symbols }}', s);
      expect(value).to.deep.equal(['AAPL']);
      expect(Array.isArray(value)).to.equal(true);
      // normalised to a plain array (no JSONata sequence flags)
      expect(Object.keys(value as object)).to.deep.equal(['0']);
      // `[]` forces an array even where JSONata would collapse a singleton, without marking the
      // caller's data
      const data = scope({ rows: [{ symbol: 'AAPL' }], symbols: ['AAPL'] });
      expect(await evaluateMapping('${{ input.rows.symbol }}', data)).to.equal('AAPL');
      expect(await evaluateMapping('${{ input.rows.symbol[] }}', data)).to.deep.equal(['AAPL']);
      expect(await evaluateMapping('${{ input.symbols[] }}', data)).to.deep.equal(['AAPL']);
      expect(Object.keys((data.input as { symbols: string[] }).symbols)).to.deep.equal(['0']);
    });

    it('interpolates text around templates', async () => {
      expect(await evaluateMapping('from ${{ input.from }} (${{ input.count }} items, ${{ input.symbols }})', s)).to.equal(
        'from 2005-01-01 (3 items, ["AAPL"])',
      );
      expect(await renderTemplate('${{ input.count }}', s)).to.equal('3');
      expect(await renderTemplate('no templates', s)).to.equal('no templates');
    });

    it('maps nested objects and arrays, passing other scalars through', async () => {
      const mapping = { a: { b: ['${{ input.from }}', 7, null, true] }, c: 'plain', d: { e: '${{ {"x": {"y": input.count}} }}' } };
      expect(await evaluateMapping(mapping, s)).to.deep.equal({
        a: { b: ['2005-01-01', 7, null, true] },
        c: 'plain',
        d: { e: { x: { y: 3 } } },
      });
    });

    it('yields undefined for a missing path, and "" when interpolated', async () => {
      expect(await evaluateMapping('${{ input.publishUrl }}', s)).to.equal(undefined);
      expect(await evaluateMapping('url=${{ input.publishUrl }}!', s)).to.equal('url=!');
      expect(await evaluateMapping({ url: '${{ input.publishUrl }}', keep: 1 }, s)).to.deep.equal({ keep: 1 });
      expect(await evaluateMapping(['${{ input.publishUrl }}'], s)).to.deep.equal([null]);
    });

    it('evaluates conditions with $exists', async () => {
      expect(await evaluateCondition('${{ $exists(input.publishUrl) }}', s)).to.equal(false);
      expect(await evaluateCondition('${{ $exists(input.from) }}', s)).to.equal(true);
      expect(await evaluateCondition('$exists(input.publishUrl)', s)).to.equal(false);
      expect(await evaluateCondition('input.nothing', s)).to.equal(false);
      expect(await evaluateCondition('steps.load.status = "succeeded"', s)).to.equal(true);
    });

    it('throws ValidationError when evaluation fails', async () => {
      let caught: unknown;
      try {
        await evaluateMapping('${{ $number("abc") + input.from }}', s);
      } catch (err: unknown) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(ValidationError);
      expect((caught as Error).message).to.match(/^expression ".*" failed: /);
    });
  });

  describe('validateInput', () => {
    it('accepts a good input', async () => {
      const def = await loadKpi();
      expect(() => validateInput(def, { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' })).to.not.throw();
      expect(() =>
        validateInput(def, { symbols: ['AAPL'], from: '2005-01-01', to: '2009-12-31', publishUrl: 'https://example.com/hook' }),
      ).to.not.throw();
    });

    function inputError(def: Definition, input: unknown): ValidationError {
      try {
        validateInput(def, input);
      } catch (err: unknown) {
        expect(err).to.be.instanceOf(ValidationError);
        return err as ValidationError;
      }
      throw new Error('input accepted');
    }

    it('names an invalid date', async () => {
      const error = inputError(await loadKpi(), { symbols: ['AAPL'], from: '2005-13-45', to: '2009-12-31' });
      expect(error.field).to.equal('input.from');
      expect(error.message).to.equal('input.from: must match format "date"');
    });

    it('names a missing property', async () => {
      const error = inputError(await loadKpi(), { symbols: ['AAPL'], from: '2005-01-01' });
      expect(error.field).to.equal('input.to');
      expect(error.message).to.equal('input.to: is required');
    });

    it('names an extra property', async () => {
      const error = inputError(await loadKpi(), { symbols: ['AAPL'], from: '2005-01-01', to: '2009-12-31', colour: 'red' });
      expect(error.field).to.equal('input.colour');
      expect(error.message).to.match(/^input\.colour: is not allowed/);
    });

    it('names an array item', async () => {
      const error = inputError(await loadKpi(), { symbols: ['aapl'], from: '2005-01-01', to: '2009-12-31' });
      expect(error.field).to.equal('input.symbols.0');
    });
  });

  describe('loadDefinitionsDir', () => {
    it('loads every definition in definitions/ against the shipped agent catalog (ignoring __fixtures__)', async () => {
      const catalog = new Map((await loadAgentCatalog()).map((spec) => [spec.name, spec.type] as const));
      const defs = await loadDefinitionsDir(here, catalog);
      const slugs = defs.map((d) => `${d.slug}@${d.version}`);
      expect(slugs).to.include.members(['kpi-tracking@1', 'image-generation@1', 'image-orchestration@1', 'marketing-campaign@1', 'content-pipeline@1', 'portfolio-review@1']);
      expect(new Set(slugs).size).to.equal(slugs.length);
    });

    it('rejects the same slug and version in two files, and reports the failing file', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'baton-defs-'));
      try {
        await copyFile(join(here, 'kpi-tracking.yaml'), join(dir, 'a.yaml'));
        await copyFile(join(here, 'kpi-tracking.yaml'), join(dir, 'b.yml'));
        await mkdir(join(dir, 'nested.yaml'));
        await writeFile(join(dir, 'notes.txt'), 'not a definition');
        let caught: unknown;
        try {
          await loadDefinitionsDir(dir, agents);
        } catch (err: unknown) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(DefinitionError);
        expect((caught as Error).message).to.match(
          new RegExp(`^${join(dir, 'b.yml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8:7: duplicate definition kpi-tracking@1`),
        );

        await rm(join(dir, 'b.yml'));
        await copyFile(join(fixtures, 'cycle.yaml'), join(dir, 'c.yaml'));
        caught = undefined;
        try {
          await loadDefinitionsDir(dir, agents);
        } catch (err: unknown) {
          caught = err;
        }
        expect((caught as Error).message).to.match(/c\.yaml:11:13: cycle: a → b → a/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
