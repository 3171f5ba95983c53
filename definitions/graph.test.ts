import { expect } from 'chai';
import { DefinitionError } from '../lib/index.js';
import type { AgentType } from '../agents/types.js';
import { ancestorsOf, configureDefinitionLimits, DEFAULT_DEFINITION_LIMITS, descendantsOf, parseDefinitionObject, successorsOf, topologicalOrder, type StepGraph } from './index.js';

const agents: ReadonlyMap<string, AgentType> = new Map<string, AgentType>([['summarizer', 'context']]);
const LENGTH = 10_000;
const id = (i: number): string => `s${i}`;

/**
 * A definition body whose steps form one `needs` chain s0 ← s1 ← … ← s9999, listed last-first
 * so that the loader's walks must go the whole depth; each step reads its predecessor's output
 * and the last one also reads s0's (an ancestor 9,999 steps up). `closed` makes s0 need s9999.
 */
function chainBody(closed: boolean): Record<string, unknown> {
  const steps = Array.from({ length: LENGTH }, (_, k) => {
    const i = LENGTH - 1 - k;
    const needs = i === 0 ? (closed ? [id(LENGTH - 1)] : []) : [id(i - 1)];
    const text = i === LENGTH - 1 ? `\${{ steps.${id(i - 1)}.output }} \${{ steps.s0.output }}` : i === 0 ? 'start' : `\${{ steps.${id(i - 1)}.output }}`;
    return { id: id(i), agent: 'summarizer', needs, with: { text } };
  });
  return { slug: 'long-chain', version: 1, name: 'Long chain', input: { type: 'object' }, steps };
}

describe('definitions: the needs graph at depth', function () {
  // Above DEFINITION_MAX_STEPS (1,000 by default): the walks themselves must stay iterative.
  before(function () {
    configureDefinitionLimits({ maxSteps: LENGTH });
  });
  after(function () {
    configureDefinitionLimits(DEFAULT_DEFINITION_LIMITS);
  });

  it('loads a 10,000-step chain and walks it without recursion', function () {
    const def = parseDefinitionObject(chainBody(false), { file: 'chain', agents });
    expect(def.steps).to.have.length(LENGTH);
    const order = topologicalOrder(def);
    expect(order).to.have.length(LENGTH);
    expect(order.slice(0, 3)).to.deep.equal(['s0', 's1', 's2']);
    expect(order[LENGTH - 1]).to.equal(id(LENGTH - 1));
    expect(ancestorsOf(def, id(LENGTH - 1)).size).to.equal(LENGTH - 1);
    expect(descendantsOf(def, 's0').size).to.equal(LENGTH - 1);
    expect(successorsOf(def, 's0')).to.deep.equal(['s1']);
    // The default output is the one leaf.
    expect(Object.keys(def.output as Record<string, string>)).to.deep.equal([id(LENGTH - 1)]);
  });

  it('still checks ancestry in a deep chain: a reference to a step that is not upstream is refused', function () {
    const body = chainBody(false);
    const steps = body['steps'] as Array<{ id: string; with: { text: string } }>;
    const root = steps[LENGTH - 1];
    if (!root) throw new Error('no s0');
    root.with.text = `\${{ steps.${id(LENGTH - 1)}.output }}`;
    expect(() => parseDefinitionObject(body, { file: 'chain', agents })).to.throw(
      DefinitionError,
      new RegExp(`step s0 references steps\\.${id(LENGTH - 1)}, which is not among its needs`),
    );
  });

  it('reports a 10,000-step cycle as one cycle, in needs order', function () {
    let caught: unknown;
    try {
      parseDefinitionObject(chainBody(true), { file: 'cycle', agents });
    } catch (err: unknown) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(DefinitionError);
    const message = (caught as Error).message;
    // s0 comes last in the file; the walk starts at s9999 and follows needs down to s0, which needs s9999.
    const ids = [LENGTH - 1, ...Array.from({ length: LENGTH - 1 }, (_, k) => LENGTH - 2 - k), LENGTH - 1].map(id);
    expect(message).to.include(`cycle: ${ids.join(' → ')}`);
    expect(message).to.match(/^cycle: steps\[9999\]\.needs\[0\]: /);
  });

  it('refuses to order a 10,000-step cycle handed to the DAG helpers directly', function () {
    const graph = { steps: Array.from({ length: LENGTH }, (_, i) => ({ id: id(i), needs: [id((i + LENGTH - 1) % LENGTH)] })) } as unknown as StepGraph;
    expect(() => topologicalOrder(graph)).to.throw(DefinitionError, /can never run \(cycle or unknown needs\)/);
    expect(ancestorsOf(graph, 's0').size).to.equal(LENGTH);
    expect(descendantsOf(graph, 's0').size).to.equal(LENGTH);
  });
});
