import jsonata from 'jsonata';
import { expect } from 'chai';
import { AgentError } from '../../lib/index.js';
import { latestVersions, loadAgentCatalog } from '../catalog.js';
import { rejection, testContext } from '../test-context.js';
import { SubrunConfig, subrunImplementation } from './subrun.js';

const kpi = (totalReturnPct: number, cagrPct: number | null) => ({ totalReturnPct, cagrPct, firstPrice: 1, lastPrice: 2 });

describe('subrun implementation', () => {
  it('is run by the engine, not by an agent worker', async () => {
    const err = await rejection(subrunImplementation.run({}, testContext(), SubrunConfig.parse({ definition: 'x' })));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.contain('orchestrator agents run in the engine');
  });

  it('checks slugs and JSONata at config time', () => {
    const issues = SubrunConfig.safeParse({ definition: 'Not A Slug', foreach: 'items[', output: '$$$(' }).error?.issues ?? [];
    expect(issues.map((i) => i.path.join('.'))).to.have.members(['definition', 'foreach', 'output']);
    expect(issues.find((i) => i.path[0] === 'foreach')?.message).to.match(/^invalid JSONata: /);
  });

  describe('the shipped orchestrators (their output JSONata over sample child outputs)', () => {
    let specs: Awaited<ReturnType<typeof loadAgentCatalog>>;
    before(async () => {
      specs = await loadAgentCatalog();
    });
    const config = (name: string) => SubrunConfig.parse(latestVersions(specs).get(name)?.config);

    it('finance-manager: one kpi-tracking child per portfolio; best, worst and mean CAGR each', async () => {
      const c = config('finance-manager');
      expect(c).to.deep.include({ definition: 'kpi-tracking', foreach: 'portfolios' });
      const input = {
        from: '2005-01-01',
        to: '2009-12-31',
        portfolios: [
          { name: 'tech', symbols: ['AAPL', 'MSFT', 'GOOG'] },
          { name: 'solo', symbols: ['IBM'] },
        ],
      };
      expect(await jsonata(c.foreach ?? '').evaluate(input)).to.deep.equal(input.portfolios);
      const outputs = [
        { kpis: { AAPL: kpi(225.5, 26.6), MSFT: kpi(12.4, 2.4), GOOG: kpi(140, null) }, summary: { text: 'Tech.' } },
        { kpis: { IBM: kpi(30, 5.5) }, summary: { text: 'Solo.' } },
      ];
      const report = (await jsonata(c.output ?? '').evaluate({ input, outputs })) as Record<string, unknown>[];
      expect(report).to.deep.equal([
        {
          name: 'tech',
          symbols: ['AAPL', 'MSFT', 'GOOG'],
          best: { symbol: 'AAPL', totalReturnPct: 225.5, cagrPct: 26.6 },
          worst: { symbol: 'MSFT', totalReturnPct: 12.4, cagrPct: 2.4 },
          meanCagrPct: 14.5,
          summary: 'Tech.',
        },
        {
          name: 'solo',
          symbols: ['IBM'],
          best: { symbol: 'IBM', totalReturnPct: 30, cagrPct: 5.5 },
          worst: { symbol: 'IBM', totalReturnPct: 30, cagrPct: 5.5 },
          meanCagrPct: 5.5,
          summary: 'Solo.',
        },
      ]);
    });

    it('image-orchestrator: one image-generation child; [{prompt, openai, google}]', async () => {
      const c = config('image-orchestrator');
      expect(c).to.deep.include({ definition: 'image-generation', input: { prompts: '${{ input.prompts }}' } });
      const output = {
        images: [
          { prompt: 'cat', openai: ['o1'], google: ['g1', 'g2'] },
          { prompt: 'dog', openai: ['o2'], google: ['g3'] },
        ],
      };
      const result: unknown = await jsonata(c.output ?? '').evaluate({ input: { prompts: ['cat', 'dog'] }, output });
      expect(result).to.deep.equal([
        { prompt: 'cat', openai: ['o1'], google: ['g1', 'g2'] },
        { prompt: 'dog', openai: ['o2'], google: ['g3'] },
      ]);
      const one: unknown = await jsonata(c.output ?? '').evaluate({ input: { prompts: ['cat'] }, output: { images: [output.images[0]] } });
      expect(one, 'one prompt stays a list').to.deep.equal([{ prompt: 'cat', openai: ['o1'], google: ['g1', 'g2'] }]);
    });
  });
});
