import { expect } from 'chai';
import { AGENT_TYPES } from './types.js';
import { AgentError } from '../lib/index.js';
import { allowListedEnv, bindAgentSpec, defaultImplementation, implementations, latestVersions, loadAgentCatalog } from './index.js';

describe('agent registry', () => {
  it('holds the ten implementations with their types, keyed by name', () => {
    expect(Object.fromEntries([...implementations].map(([name, i]) => [name, i.type]))).to.deep.equal({
      llm: 'context',
      summarizer: 'context',
      http: 'api',
      a2a: 'api',
      sql: 'tool',
      function: 'function',
      subrun: 'orchestrator',
      codemod: 'function',
      'repo-tests': 'tool',
      'goal-planner': 'context',
    });
    for (const [name, implementation] of implementations) {
      expect(implementation.name).to.equal(name);
      expect(implementation.description).to.be.a('string').and.not.equal('');
    }
    expect(AGENT_TYPES.map(defaultImplementation)).to.deep.equal(['llm', 'http', 'sql', 'function', 'subrun']);
  });

  it('binds every shipped catalog entry to an implementation of its own type, with a valid config', async () => {
    const specs = await loadAgentCatalog();
    expect(specs).to.have.length.greaterThan(0);
    for (const spec of specs) {
      const { implementation, config } = bindAgentSpec(spec);
      expect(implementation.name, spec.name).to.equal(spec.implementation);
      expect(implementation.type, spec.name).to.equal(spec.type);
      expect(config, spec.name).to.not.equal(undefined);
      expect(spec.description, spec.name).to.be.a('string').and.not.equal('');
    }
  });

  it('still offers the four engine-visible named agents, with their types, as catalog entries', async () => {
    const byName = latestVersions(await loadAgentCatalog());
    const engineVisible = ['postgres-agent', 'kpi-calculator', 'summarizer', 'marketing-swarm'];
    expect(Object.fromEntries(engineVisible.map((name) => [name, byName.get(name)?.type]))).to.deep.equal({
      'postgres-agent': 'tool',
      'kpi-calculator': 'function',
      summarizer: 'context',
      'marketing-swarm': 'api',
    });
  });

  it('binds a spec to its implementation and parsed config, or fails clearly', () => {
    const spec = { name: 'hook', type: 'api' as const, version: 3, description: 'd', implementation: 'http', config: { method: 'POST' }, env: [], secrets: [] };
    const { implementation, config } = bindAgentSpec(spec);
    expect(implementation.name).to.equal('http');
    expect(config).to.deep.include({ method: 'POST', timeoutMs: 15_000 });
    expect(() => bindAgentSpec({ ...spec, implementation: 'gone' })).to.throw(AgentError, 'agent hook@3: unknown implementation gone');
    expect(() => bindAgentSpec({ ...spec, config: { method: 'TRACE' } })).to.throw(AgentError, /^agent hook@3: config is invalid for http \(method: /);
  });

  it('passes only allow-listed, set variables as ctx.env', () => {
    expect(allowListedEnv(['A', 'B', 'C'], { A: '1', B: '', D: 'secret', PATH: '/bin' })).to.deep.equal({ A: '1' });
  });
});
