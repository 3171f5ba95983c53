import { expect } from 'chai';
import { AGENT_TYPES } from './types.js';
import { agentTypesByName, namedAgents } from './index.js';

describe('agent registry', () => {
  it('holds the four named agents with their types', () => {
    expect(Object.fromEntries(agentTypesByName())).to.deep.equal({
      'postgres-agent': 'tool',
      'kpi-calculator': 'function',
      summarizer: 'context',
      'marketing-swarm': 'api',
    });
  });

  it('keys every agent by its own name, with a known type and a description', () => {
    for (const [name, agent] of namedAgents) {
      expect(agent.name).to.equal(name);
      expect(AGENT_TYPES).to.include(agent.type);
      expect(agent.description).to.be.a('string').and.not.equal('');
    }
  });
});
