import { expect } from 'chai';
import { ValidationError } from '../../lib/index.js';
import { loadModules, moduleCodeResolver } from '../modules.js';
import { testFunctionRuntime } from '../test-catalog.js';
import { rejection, testContext } from '../test-context.js';
import type { AgentContext, FunctionLimits } from '../types.js';
import { FunctionConfig, functionImplementation } from './function.js';
import type { FunctionRuntime } from './runtime.js';

describe('function implementation (worker-thread function runtime)', () => {
  let runtime: FunctionRuntime;
  let moduleCode: AgentContext['moduleCode'];
  before(async () => {
    runtime = testFunctionRuntime();
    moduleCode = moduleCodeResolver(await loadModules());
  });
  after(async () => {
    await runtime?.close();
  });

  it('runs inline code with the limits through ctx.functions', async () => {
    const seen: FunctionLimits[] = [];
    // Records the limits handed to the real runtime, which still runs the code.
    const ctx = testContext({ functions: { run: (code, input, limits, c) => (seen.push(limits), runtime.run(code, input, limits, c)) } });
    const config = FunctionConfig.parse({ code: 'function main(input) { return { doubled: input.n * 2 }; }', limits: { timeoutMs: 1000 } });
    expect(await functionImplementation.run({ n: 21 }, ctx, config)).to.deep.equal({ doubled: 42 });
    expect(seen).to.deep.equal([{ timeoutMs: 1000, memoryMb: 64 }]);
  });

  it('resolves module code with ctx.moduleCode', async () => {
    const ctx = testContext({ functions: runtime, moduleCode });
    const out = (await functionImplementation.run(
      { prices: [{ symbol: 'X', date: '2020-01-01', price: 10 }, { symbol: 'X', date: '2020-02-01', price: 11 }] },
      ctx,
      FunctionConfig.parse({ module: 'kpi-metrics@1' }),
    )) as { kpis: { X: { totalReturnPct: number } } };
    expect(out.kpis.X.totalReturnPct).to.be.closeTo(10, 1e-9);
    const unknown = await rejection(functionImplementation.run({}, ctx, FunctionConfig.parse({ module: 'nope@1' })));
    expect(unknown).to.be.instanceOf(ValidationError);
    expect(unknown.message).to.equal('module: unknown module nope@1 (known: image-generator-google@1, image-generator-openai@1, kpi-metrics@1, no-forbidden-imports@1, rename-symbol@1, require-to-import@1)');
  });

  it('needs exactly one of module or code', () => {
    expect(FunctionConfig.safeParse({}).success).to.equal(false);
    expect(FunctionConfig.safeParse({ module: 'a@1', code: 'x' }).success).to.equal(false);
    expect(FunctionConfig.safeParse({ module: 'A@one' }).success).to.equal(false);
  });
});
