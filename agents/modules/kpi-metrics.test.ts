import { expect } from 'chai';
import type { KpiOutput } from '../function/kpi-types.js';
import type { FunctionRuntime } from '../function/runtime.js';
import { AgentError, ValidationError } from '../../lib/index.js';
import { testContext, rejection } from '../test-context.js';
import { catalogAgent, testFunctionRuntime, type BoundAgent } from '../test-catalog.js';
import { loadModules, moduleCodeResolver, validateModuleInput } from '../modules.js';
import type { AgentContext } from '../types.js';

const EPS = 1e-9;

let runtime: FunctionRuntime;
let script: string;
let kpiCalculator: BoundAgent;
let ctx: AgentContext;

/** The kpi-calculator catalog entry's limits (5 s, 64 MiB), as the entry states them. */
function entryLimits(): { timeoutMs: number; memoryMb: number } {
  return (kpiCalculator.config as { limits: { timeoutMs: number; memoryMb: number } }).limits;
}

/** Run the real kpi-metrics@1 main.js in the worker-thread function runtime with the entry's limits. */
async function computeKpis(prices: unknown[]): Promise<KpiOutput> {
  return (await ctx.functions.run(script, { prices }, entryLimits(), ctx)) as KpiOutput;
}

describe('kpi-metrics@1 and the kpi-calculator entry, through the worker-thread function runtime', () => {
  before(async function () {
    runtime = testFunctionRuntime();
    const modules = await loadModules();
    script = modules.get('kpi-metrics@1')!.code;
    kpiCalculator = await catalogAgent('kpi-calculator');
    ctx = testContext({ functions: runtime, moduleCode: moduleCodeResolver(modules) });
  });
  after(async function () {
    await runtime?.close();
  });

  describe('kpi-metrics@1 (main.js run directly)', () => {
    // BETA: 100, 110, 99, 120, 90 on the first of Jan..May 2020; ALFA: 50, 40, 60 in Jan..Mar 2021.
    // Rows are shuffled and the two symbols interleaved, ALFA after BETA.
    const prices = [
      { symbol: 'BETA', date: '2020-04-01', price: 120 },
      { symbol: 'ALFA', date: '2021-03-01', price: 60 },
      { symbol: 'BETA', date: '2020-01-01', price: 100 },
      { symbol: 'BETA', date: '2020-05-01', price: 90 },
      { symbol: 'ALFA', date: '2021-01-01', price: 50 },
      { symbol: 'BETA', date: '2020-03-01', price: 99 },
      { symbol: 'ALFA', date: '2021-02-01', price: 40 },
      { symbol: 'BETA', date: '2020-02-01', price: 110 },
    ];

    it('groups by symbol, sorts by date and returns symbols in alphabetical order', async () => {
      const { kpis } = await computeKpis(prices);
      expect(Object.keys(kpis)).to.deep.equal(['ALFA', 'BETA']);
    });

    it('computes every KPI of a 5-price series (hand-checked values)', async () => {
      const { kpis } = await computeKpis(prices);
      const beta = kpis.BETA;
      if (!beta) return expect.fail('BETA missing');
      expect(beta.firstPrice).to.equal(100);
      expect(beta.lastPrice).to.equal(90);
      // (90 / 100 − 1) · 100
      expect(beta.totalReturnPct).to.be.closeTo(-10, EPS);
      // 2020-01-01 → 2020-05-01 = 31 + 29 + 31 + 30 = 121 days (leap year); years = 121 / 365.25;
      // (0.9^(365.25 / 121) − 1) · 100 = −27.2426846327771386 (40-digit decimal arithmetic)
      expect(beta.cagrPct).to.be.closeTo(-27.2426846327771386, EPS);
      // running max 100, 110, 110, 120, 120 → drawdowns 0, 0, 10 %, 0, 25 % → max 25 %
      expect(beta.maxDrawdownPct).to.be.closeTo(25, EPS);
      // returns r = +0.1, −0.1, 120/99 − 1 = 7/33, −0.25; mean = −5/528;
      // sample variance Σ(r − mean)² / 3 = 73841/1742400; volatility = √(variance · 12) · 100
      expect(beta.volatilityPct).to.be.closeTo(71.31246959374797, EPS);
      // best: +7/33 = +21.2121…% dated 2020-04-01; worst: −25 % dated 2020-05-01
      expect(beta.bestMonth?.date).to.equal('2020-04-01');
      expect(beta.bestMonth?.returnPct).to.be.closeTo(21.212121212121212, EPS);
      expect(beta.worstMonth?.date).to.equal('2020-05-01');
      expect(beta.worstMonth?.returnPct).to.be.closeTo(-25, EPS);
      return undefined;
    });

    it('computes every KPI of a 3-price series (hand-checked values)', async () => {
      const { kpis } = await computeKpis(prices);
      const alfa = kpis.ALFA;
      if (!alfa) return expect.fail('ALFA missing');
      expect(alfa.firstPrice).to.equal(50);
      expect(alfa.lastPrice).to.equal(60);
      // (60 / 50 − 1) · 100
      expect(alfa.totalReturnPct).to.be.closeTo(20, EPS);
      // 2021-01-01 → 2021-03-01 = 31 + 28 = 59 days; (1.2^(365.25 / 59) − 1) · 100
      expect(alfa.cagrPct).to.be.closeTo(209.1616348854114798, EPS);
      // running max 50, 50, 60 → drawdowns 0, 20 %, 0 → max 20 %
      expect(alfa.maxDrawdownPct).to.be.closeTo(20, EPS);
      // returns −0.2, +0.5; mean 0.15; sample variance (0.35² + 0.35²) / 1 = 0.245;
      // volatility = √(0.245 · 12) · 100 = √2.94 · 100
      expect(alfa.volatilityPct).to.be.closeTo(171.46428199482247, EPS);
      expect(alfa.bestMonth?.date).to.equal('2021-03-01');
      expect(alfa.bestMonth?.returnPct).to.be.closeTo(50, EPS);
      expect(alfa.worstMonth?.date).to.equal('2021-02-01');
      expect(alfa.worstMonth?.returnPct).to.be.closeTo(-20, EPS);
      return undefined;
    });

    it('picks the first occurrence of a tied best month', async () => {
      // 100 → 200 → 100 → 200: returns +100 %, −50 %, +100 % (both +100 % are exact) → first one wins
      const { kpis } = await computeKpis([
        { symbol: 'TIE', date: '2022-01-01', price: 100 },
        { symbol: 'TIE', date: '2022-02-01', price: 200 },
        { symbol: 'TIE', date: '2022-03-01', price: 100 },
        { symbol: 'TIE', date: '2022-04-01', price: 200 },
      ]);
      expect(kpis.TIE?.bestMonth).to.deep.equal({ date: '2022-02-01', returnPct: 100 });
      expect(kpis.TIE?.worstMonth).to.deep.equal({ date: '2022-03-01', returnPct: -50 });
    });

    it('handles a single price: zero return, no CAGR, volatility or months', async () => {
      const { kpis } = await computeKpis([{ symbol: 'ONE', date: '2020-06-01', price: 42 }]);
      expect(kpis.ONE).to.deep.equal({
        firstPrice: 42,
        lastPrice: 42,
        totalReturnPct: 0,
        cagrPct: null,
        maxDrawdownPct: 0,
        volatilityPct: null,
        bestMonth: null,
        worstMonth: null,
      });
    });

    it('handles two prices: one return, volatility still null', async () => {
      const { kpis } = await computeKpis([
        { symbol: 'TWO', date: '2020-02-01', price: 80 },
        { symbol: 'TWO', date: '2020-01-01', price: 100 },
      ]);
      const two = kpis.TWO;
      expect(two?.volatilityPct).to.equal(null);
      // (80 / 100 − 1) · 100 = −20 %, which is both the best and the worst month
      expect(two?.bestMonth?.returnPct).to.be.closeTo(-20, EPS);
      expect(two?.worstMonth).to.deep.equal(two?.bestMonth);
      expect(two?.maxDrawdownPct).to.be.closeTo(20, EPS);
    });

    it('rejects a non-positive price, naming symbol and date', async () => {
      const err = await rejection(
        computeKpis([
          { symbol: 'OK', date: '2020-01-01', price: 10 },
          { symbol: 'BAD', date: '2020-03-01', price: 0 },
        ]),
      );
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('BAD').and.to.contain('2020-03-01');
    });

    it('rejects an empty window', async () => {
      const err = await rejection(computeKpis([]));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('no prices in the requested window');
    });

    it('rejects two prices for the same symbol and date', async () => {
      const err = await rejection(
        computeKpis([
          { symbol: 'DUP', date: '2020-01-01', price: 10 },
          { symbol: 'DUP', date: '2020-01-01', price: 11 },
        ]),
      );
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('DUP').and.to.contain('2020-01-01');
    });
  });

  describe('kpi-calculator agent (catalog entry bound to the function implementation)', () => {
    it('is a function agent that runs kpi-metrics@1 on the step input', async () => {
      expect(kpiCalculator.spec.type).to.equal('function');
      expect(kpiCalculator.config).to.deep.equal({ module: 'kpi-metrics@1', limits: { timeoutMs: 5000, memoryMb: 64 } });
      const output = (await kpiCalculator.run(
        {
          prices: [
            { symbol: 'X', date: '2020-01-01', price: 10 },
            { symbol: 'X', date: '2021-01-01', price: 20 },
          ],
        },
        ctx,
      )) as KpiOutput;
      // 10 → 20: +100 %; 366 days (2020 is a leap year): (2^(365.25 / 366) − 1) · 100
      expect(output.kpis.X?.totalReturnPct).to.be.closeTo(100, EPS);
      expect(output.kpis.X?.cagrPct).to.be.closeTo(99.716124940117033894, EPS);
    });

    it('rejects a malformed row at the schema check the worker runs first, naming the field', async () => {
      const modules = await loadModules();
      const module = modules.get('kpi-metrics@1');
      expect(module).to.not.equal(undefined);
      expect(() => validateModuleInput(module!, { prices: [{ symbol: 'X', date: '2020-01-01', price: '10' }] }))
        .to.throw(ValidationError)
        .with.property('field')
        .that.matches(/prices\.0\.price/);
    });

    it('fails a malformed row with AgentError naming the symbol, date and value', async () => {
      // Called directly (without the worker, which first checks the input against the module's
      // `input` schema and answers ValidationError on `input.prices.0.price`), main.js rejects it.
      const err = await rejection(kpiCalculator.run({ prices: [{ symbol: 'X', date: '2020-01-01', price: '10' }] }, ctx));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('invalid price for X on 2020-01-01: 10');
    });

    it('cannot run without ctx.functions: the agent does not compute in-process', async () => {
      const err = await rejection(kpiCalculator.run({ prices: [{ symbol: 'X', date: '2020-01-01', price: 10 }] }, testContext({ moduleCode: ctx.moduleCode })));
      expect(err.message).to.contain('functions.run is not available');
    });
  });
});
