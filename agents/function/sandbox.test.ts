import { expect } from 'chai';
import { AgentError, CancelledError, silentLogger, type Logger } from '../../lib/index.js';
import { runInSandbox } from './sandbox.js';

const MB = 1024 * 1024;
const limits = { timeoutMs: 2_000, memoryBytes: 16 * MB };

/** Run and return the rejection (fails the test if the call succeeds). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    const value = await promise;
    expect.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof Error && err.name === 'AssertionError') throw err;
    expect(err).to.be.instanceOf(Error);
    return err as Error;
  }
}

describe('runInSandbox (QuickJS)', () => {
  it('passes the input as JSON and returns main()’s JSON result', async () => {
    const result = await runInSandbox(
      'function main(input) { return { sum: input.a + input.b, tags: input.tags.map((t) => t.toUpperCase()) }; }',
      { a: 2, b: 40, tags: ['x', 'y'] },
      limits,
    );
    expect(result).to.deep.equal({ sum: 42, tags: ['X', 'Y'] });
  });

  it('supports an async main', async () => {
    const result = await runInSandbox('async function main(input) { await null; return input * 2; }', 21, limits);
    expect(result).to.equal(42);
  });

  it('stops an infinite loop at the time limit, quickly', async () => {
    const started = Date.now();
    const err = await rejection(runInSandbox('function main() { for (;;) {} }', null, { ...limits, timeoutMs: 200 }));
    const elapsed = Date.now() - started;
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.equal('function exceeded its time limit of 200 ms');
    expect(elapsed).to.be.below(1_500);
  });

  it('cannot swallow the time-limit interrupt with try/catch', async () => {
    const code = 'function main() { for (;;) { try { for (;;) {} } catch (e) { /* ignored */ } } }';
    const err = await rejection(runInSandbox(code, null, { ...limits, timeoutMs: 200 }));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/time limit of 200 ms/);
  });

  it('fails a huge array allocation at the memory limit', async () => {
    const err = await rejection(
      runInSandbox('function main() { return new Array(50000000).fill(0).length; }', null, limits),
    );
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.equal(`function exceeded its memory limit of ${16 * MB} bytes`);
  });

  it('enforces the memory limit across many small allocations (not only per allocation)', async () => {
    // 200 × 800 KB = 160 MB in blocks far below the 16 MB limit: QuickJS's own accounting misses
    // these in the WebAssembly build; the capped WebAssembly memory must stop them.
    const code = 'function main() { const keep = []; for (let i = 0; i < 200; i++) keep.push(new Float64Array(100000)); return keep.length; }';
    const err = await rejection(runInSandbox(code, null, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/memory limit/);
  });

  it('surfaces the message and location of an error thrown by the code', async () => {
    const code = 'function check(x) {\n  if (x < 0) throw new RangeError("x must not be negative");\n}\nfunction main(input) { check(input.x); }';
    const err = await rejection(runInSandbox(code, { x: -1 }, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.contain('RangeError: x must not be negative');
    expect(err.message).to.contain('function.js:2');
  });

  it('reports a syntax error as an AgentError', async () => {
    const err = await rejection(runInSandbox('function main( {', null, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.contain('SyntaxError');
  });

  it('exposes no require, process, timers or network', async () => {
    const code = `function main() {
      return [typeof require, typeof process, typeof module, typeof fetch, typeof XMLHttpRequest,
              typeof setTimeout, typeof std, typeof os];
    }`;
    const result = await runInSandbox(code, null, limits);
    expect(result).to.deep.equal(Array(8).fill('undefined'));
  });

  it('throws CancelledError for an already aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await rejection(runInSandbox('function main() { return 1; }', null, { ...limits, signal: controller.signal }));
    expect(err).to.be.instanceOf(CancelledError);
  });

  it('stops running code when the signal aborts during the run', async () => {
    const controller = new AbortController();
    // console.log is the one host call available; this logger aborts the step when it is used,
    // after which the code spins until the interrupt handler sees the aborted signal.
    const logger = silentLogger();
    const abortingLogger = Object.assign(Object.create(logger) as Logger, {
      info: () => controller.abort(),
    });
    const started = Date.now();
    const err = await rejection(
      runInSandbox('function main() { console.log("starting"); for (;;) {} }', null, {
        timeoutMs: 10_000,
        memoryBytes: 16 * MB,
        signal: controller.signal,
        logger: abortingLogger,
      }),
    );
    expect(err).to.be.instanceOf(CancelledError);
    expect(Date.now() - started).to.be.below(2_000);
  });

  it('forwards console.log to the logger', async () => {
    const lines: unknown[] = [];
    const logger = Object.assign(Object.create(silentLogger()) as Logger, {
      info: (obj: unknown) => lines.push(obj),
    });
    await runInSandbox('function main() { console.log("total", { n: 3 }); return true; }', null, { ...limits, logger });
    expect(lines).to.deep.equal([{ source: 'sandbox', line: 'total {"n":3}' }]);
  });

  it('rejects a missing main', async () => {
    const err = await rejection(runInSandbox('const notMain = 1;', null, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/main/);
  });

  it('rejects results that are not JSON-serialisable', async () => {
    for (const body of ['return undefined;', 'return () => 1;', 'return 10n;']) {
      const err = await rejection(runInSandbox(`function main() { ${body} }`, null, limits));
      expect(err, body).to.be.instanceOf(AgentError);
    }
  });

  it('survives nesting deep enough to overflow the host stack, and keeps working', async () => {
    const code = 'function main() { return eval("(".repeat(100000) + "1" + ")".repeat(100000)); }';
    const err = await rejection(runInSandbox(code, null, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/stack/);
    expect(await runInSandbox('function main(input) { return input; }', { still: 'alive' }, limits)).to.deep.equal({
      still: 'alive',
    });
  });

  it('stops deep recursion with an AgentError', async () => {
    const err = await rejection(runInSandbox('function r(n) { return r(n + 1) + 1; } function main() { return r(0); }', null, limits));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/stack/);
  });

  it('disposes every runtime: 200 sequential calls under a 2 MB limit complete', async () => {
    // The module's WebAssembly memory is capped at its 16 MiB base + 2 MiB; a leaked runtime and
    // context (plus the 1 000 objects each call creates) would exhaust it in well under 200 calls.
    const small = { timeoutMs: 1_000, memoryBytes: 2 * MB };
    const code = 'function main(input) { const a = []; for (let k = 0; k < 1000; k++) a.push({ k }); return input.n * 2; }';
    for (let n = 0; n < 200; n += 1) {
      expect(await runInSandbox(code, { n }, small)).to.equal(n * 2);
    }
  });
});
