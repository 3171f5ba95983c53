/**
 * `Batcher` (lib/batcher.ts): the hot path's smart batching of statements, with a
 * recording `send` in place of the statement.
 */
import { expect } from 'chai';
import { Batcher } from '../lib/index.js';

/** A `send` that records its batches and answers when released. */
function recorder(fail: (item: number) => boolean = () => false) {
  const batches: number[][] = [];
  const releases: Array<() => void> = [];
  const send = async (items: number[]): Promise<string[]> => {
    batches.push(items);
    await new Promise<void>((resolve) => releases.push(resolve));
    if (items.some(fail)) throw new Error(`bad item in ${items.join(',')}`);
    return items.map((i) => `done ${i}`);
  };
  const releaseAll = async (): Promise<void> => {
    while (releases.length > 0) {
      releases.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { batches, send, releaseAll };
}

describe('Batcher (hot-path statement batching)', function () {
  it('sends a call made while idle at once, alone, and the calls made meanwhile together next', async function () {
    const r = recorder();
    const batcher = new Batcher(r.send);
    const first = batcher.submit(1);
    expect(r.batches).to.deep.equal([[1]]);
    const rest = [batcher.submit(2), batcher.submit(3), batcher.submit(4)];
    expect(r.batches, 'nothing more while one is in flight').to.deep.equal([[1]]);
    const settled = Promise.all([first, ...rest]);
    await r.releaseAll();
    expect(await settled).to.deep.equal(['done 1', 'done 2', 'done 3', 'done 4']);
    expect(r.batches).to.deep.equal([[1], [2, 3, 4]]);
  });

  it('caps a statement at maxItems', async function () {
    const r = recorder();
    const batcher = new Batcher(r.send, 2);
    const all = Promise.all([1, 2, 3, 4, 5].map((i) => batcher.submit(i)));
    await r.releaseAll();
    await all;
    expect(r.batches).to.deep.equal([[1], [2, 3], [4, 5]]);
  });

  it("sends a failed batch's items again one by one: only the bad item rejects", async function () {
    const r = recorder((i) => i === 3);
    const batcher = new Batcher(r.send);
    const first = batcher.submit(1);
    const others = [2, 3, 4].map((i) => batcher.submit(i).then((v) => v, (err: Error) => err.message));
    await r.releaseAll();
    expect(await first).to.equal('done 1');
    expect(await Promise.all(others)).to.deep.equal(['done 2', 'bad item in 3', 'done 4']);
    expect(r.batches).to.deep.equal([[1], [2, 3, 4], [2], [3], [4]]);
  });
});
