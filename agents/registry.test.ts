import { expect } from 'chai';
import { AGENT_TYPES } from './types.js';
import { AgentError } from '../lib/index.js';
import { agentTypesByName, allowListedEnv, bindAgentSpec, defaultImplementation, implementations, namedAgents } from './index.js';

describe('agent registry', () => {
  it('holds the six implementations with their types, keyed by name', () => {
    expect(Object.fromEntries([...implementations].map(([name, i]) => [name, i.type]))).to.deep.equal({
      llm: 'context',
      summarizer: 'context',
      http: 'api',
      sql: 'tool',
      function: 'function',
      subrun: 'orchestrator',
    });
    for (const [name, implementation] of implementations) {
      expect(implementation.name).to.equal(name);
      expect(implementation.description).to.be.a('string').and.not.equal('');
    }
    expect(AGENT_TYPES.map(defaultImplementation)).to.deep.equal(['llm', 'http', 'sql', 'function', 'subrun']);
  });

  it('still offers the four engine-visible named agents with their types', () => {
    expect(Object.fromEntries(agentTypesByName())).to.deep.equal({
      'postgres-agent': 'tool',
      'kpi-calculator': 'function',
      summarizer: 'context',
      'marketing-swarm': 'api',
    });
    for (const [name, agent] of namedAgents) {
      expect(agent.name).to.equal(name);
      expect(AGENT_TYPES).to.include(agent.type);
      expect(agent.description).to.be.a('string').and.not.equal('');
    }
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
