/**
 * Safety rails of definitions and expressions (issue 12 items 3–4), at the loader: size and step
 * limits checked before parsing, expression size, regexes the linear-time engine cannot run,
 * self-recursive sub-runs, bounded `onTimeout: retry`, and catastrophic regexes that finish at once.
 */
import { expect } from 'chai';
import { DefinitionError, DefinitionTooLargeError, ExpressionTimeoutError, blockSequenceLength, linearRegExpProblem } from '../lib/index.js';
import type { AgentType } from '../agents/types.js';
import { assertMatchesSchema } from '../agents/json-schema.js';
import {
  configureDefinitionLimits,
  DEFAULT_DEFINITION_LIMITS,
  evaluateExpression,
  parseDefinition,
  parseDefinitionObject,
  validateInput,
  type CheckpointStep,
  type DefinitionProblem,
  type ExpressionScope,
} from './index.js';

const agents: ReadonlyMap<string, AgentType> = new Map<string, AgentType>([['echo', 'tool']]);
const CATASTROPHIC = `${'a'.repeat(30)}!`;

/** A chain of `n` steps, each reading its predecessor's output. */
function chain(n: number): string {
  const lines = ['slug: big', 'name: Big', 'version: 1', 'input: {type: object}', 'steps:'];
  for (let i = 0; i < n; i++) {
    lines.push(`  - id: s${i}`, '    agent: echo');
    if (i > 0) lines.push(`    needs: [s${i - 1}]`, `    with: {v: "\${{ steps.s${i - 1}.output }}"}`);
  }
  return `${lines.join('\n')}\n`;
}

function oneStep(lines: string[], input = '{type: object}'): string {
  return ['slug: one', 'name: One', 'version: 1', `input: ${input}`, 'steps:', '  - id: a', ...lines.map((l) => `    ${l}`), ''].join('\n');
}

function problemsOf(fn: () => unknown): DefinitionProblem[] {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(DefinitionError);
    return ((err as DefinitionError).details?.['problems'] ?? []) as DefinitionProblem[];
  }
  expect.fail('expected a DefinitionError');
}

const scope = (input: unknown): ExpressionScope => ({ input, steps: {}, run: { id: 'r', definition: 'd' } });

describe('definition and expression limits', function () {
  afterEach(function () {
    configureDefinitionLimits(DEFAULT_DEFINITION_LIMITS);
  });

  describe('size and steps, before parsing', function () {
    it('loads a 1,000-step chain', function () {
      const definition = parseDefinition(chain(1000), { file: 'big.yaml', agents });
      expect(definition.steps).to.have.length(1000);
    });

    it('refuses a 10,000-step definition at `steps`, from the lexer count', function () {
      const source = chain(10_000);
      expect(blockSequenceLength(source, 'steps')).to.equal(10_000);
      const [problem] = problemsOf(() => parseDefinition(source, { file: 'big.yaml', agents }));
      expect(problem).to.include({ path: 'steps' });
      expect(problem?.message).to.contain('10000 steps; at most 1000 (DEFINITION_MAX_STEPS)');
    });

    it('refuses too many steps in a JSON definition and in flow-style YAML', function () {
      const steps = Array.from({ length: 1001 }, (_, i) => ({ id: `s${i}`, agent: 'echo' }));
      const [json] = problemsOf(() => parseDefinitionObject({ slug: 'big', name: 'Big', version: 1, input: { type: 'object' }, steps }, { file: 'request', agents }));
      expect(json?.message).to.contain('1001 steps');
      const flow = `slug: big\nname: Big\nversion: 1\ninput: {type: object}\nsteps: ${JSON.stringify(steps)}\n`;
      expect(blockSequenceLength(flow, 'steps')).to.equal(undefined);
      const [yaml] = problemsOf(() => parseDefinition(flow, { file: 'big.yaml', agents }));
      expect(yaml).to.include({ path: 'steps', line: 5 });
    });

    it('refuses a source over DEFINITION_MAX_BYTES with 413 DEFINITION_TOO_LARGE', function () {
      configureDefinitionLimits({ maxBytes: 1000 });
      const err = (() => {
        try {
          parseDefinition(chain(50), { file: 'big.yaml', agents });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(DefinitionTooLargeError);
      expect(err).to.include({ code: 'DEFINITION_TOO_LARGE', httpStatus: 413, field: 'body' });
    });

    it('counts block sequences without counting dashes inside scalars or nested lists', function () {
      const source = 'steps:\n  - id: a\n    with: |\n      - not a step\n    x:\n      - 1\n  - id: b\noutput: {}\n';
      expect(blockSequenceLength(source, 'steps')).to.equal(2);
      expect(blockSequenceLength('steps:\n- id: a\n  y:\n  - 1\n- id: b\nname: x\n', 'steps')).to.equal(2);
    });
  });

  describe('expressions', function () {
    it('refuses an expression over EXPRESSION_MAX_BYTES, naming the field', function () {
      const long = Array.from({ length: 1200 }, (_, i) => `${i}`).join(' + ');
      const [problem] = problemsOf(() => parseDefinition(oneStep(['agent: echo', `with: {v: "\${{ ${long} }}"}`]), { file: 'one.yaml', agents }));
      expect(problem).to.include({ path: 'steps[0].with.v', line: 8 });
      expect(problem?.message).to.contain('at most 4096 bytes (EXPRESSION_MAX_BYTES)');
    });

    it('refuses regex literals the linear-time engine cannot run, naming the field', function () {
      for (const regex of ['/^(a+)+$/i', '/(a)\\\\1/', '/(?=a)b/']) {
        const [problem] = problemsOf(() => parseDefinition(oneStep(['agent: echo', `when: "$match(input.s, ${regex})"`]), { file: 'one.yaml', agents }));
        expect(problem, regex).to.include({ path: 'steps[0].when', line: 8 });
        expect(problem?.message).to.match(/regular expression .* (case-insensitive|linear time)/);
      }
    });

    it('evaluates a catastrophic regex at once (linear-time engine), also through $eval', async function () {
      const started = performance.now();
      expect(await evaluateExpression('$match(input.s, /^(a+)+$/)', scope({ s: CATASTROPHIC }))).to.equal(undefined);
      expect(await evaluateExpression('$contains(input.s, /^(a+)+$/)', scope({ s: CATASTROPHIC }))).to.equal(false);
      expect(await evaluateExpression('$contains(input.s, /^(a+)+$/)', scope({ s: 'aaaa' }))).to.equal(true);
      expect(await evaluateExpression('$eval("$contains(input.s, /^(a+)+$/)")', scope({ s: CATASTROPHIC }))).to.equal(false);
      // Far below the 35+ s the backtracking engine takes (a functional bound, not a speed target).
      expect(performance.now() - started).to.be.below(5000);
      const refused: unknown = await evaluateExpression('$eval("$contains(input.s, /(a+)+\\\\1/)")', scope({ s: 'a' })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(refused)).to.match(/linear time/);
    });

    it('fails an expression past EXPRESSION_TIMEOUT_MS with EXPRESSION_TIMEOUT', async function () {
      configureDefinitionLimits({ expressionTimeoutMs: 50 });
      const spin = '$count($map([1..2000], function($v) { $map([1..2000], function($w) { $w }) }))';
      const err: unknown = await evaluateExpression(spin, scope({})).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(ExpressionTimeoutError);
      expect(err).to.include({ code: 'EXPRESSION_TIMEOUT' });
    });
  });

  describe('JSON Schema patterns', function () {
    it('validates a catastrophic pattern at once and names the field', function () {
      const definition = parseDefinition(oneStep(['agent: echo'], '{type: object, properties: {s: {type: string, pattern: "^(a+)+$"}}}'), { file: 'one.yaml', agents });
      expect(() => validateInput(definition, { s: CATASTROPHIC })).to.throw(/input\.s: must match pattern/);
      expect(() => validateInput(definition, { s: 'aaa' })).not.to.throw();
      expect(() => assertMatchesSchema({ type: 'string', pattern: '^(a+)+$' }, CATASTROPHIC, 'params')).to.throw(/params: must match pattern/);
    });

    it('refuses patterns the linear-time engine cannot run, at the pattern', function () {
      for (const pattern of ['(a)\\\\1', '\\\\p{L}+', '(?<=a)b']) {
        const [problem] = problemsOf(() =>
          parseDefinition(oneStep(['agent: echo'], `{type: object, properties: {s: {type: string, pattern: "${pattern}"}}}`), { file: 'one.yaml', agents }),
        );
        expect(problem, pattern).to.include({ path: 'input.properties.s.pattern' });
        expect(problem?.message).to.match(/linear-time|linear time/);
      }
      expect(linearRegExpProblem('^[a-z0-9-]+$')).to.equal(undefined);
    });
  });

  describe('sub-runs and checkpoints', function () {
    it('refuses a step that runs its own definition, at run.slug', function () {
      const [problem] = problemsOf(() => parseDefinition(oneStep(['type: orchestrator', 'run: {slug: one}']), { file: 'one.yaml', agents }));
      expect(problem).to.include({ path: 'steps[0].run.slug', line: 8 });
      expect(problem?.message).to.contain('runs its own definition');
    });

    it('bounds onTimeout: retry with maxRetries (default 3) then onRetriesExhausted (default abort)', function () {
      const checkpoint = (extra: string[]) =>
        parseDefinition(
          ['slug: cp', 'name: Cp', 'version: 1', 'input: {type: object}', 'steps:', '  - id: a', '    agent: echo', '  - id: b', '    type: checkpoint', '    needs: [a]', '    prompt: ok?', '    retryStep: a', ...extra.map((l) => `    ${l}`), ''].join('\n'),
          { file: 'cp.yaml', agents },
        ).steps[1] as CheckpointStep;
      expect(checkpoint(['onTimeout: retry'])).to.include({ maxRetries: 3, onRetriesExhausted: 'abort' });
      expect(checkpoint(['onTimeout: retry', 'maxRetries: 1', 'onRetriesExhausted: continue'])).to.include({ maxRetries: 1, onRetriesExhausted: 'continue' });
      const [problem] = problemsOf(() => checkpoint(['onTimeout: abort', 'decisions: [continue, retry]', 'maxRetries: 2']));
      expect(problem).to.include({ path: 'steps[1].maxRetries' });
    });
  });
});
