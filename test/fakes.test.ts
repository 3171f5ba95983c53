/** The provider fakes produce valid PNGs (checked by parsing the chunks, CRCs and pixel data). */
import { inflateSync } from 'node:zlib';
import { expect } from 'chai';
import { crc32, fakePng, PNG_SIGNATURE } from './support/fakes.js';

describe('provider fakes', () => {
  it('fakePng is a valid 2×2 RGB PNG, deterministic and distinct per seed', () => {
    const png = fakePng('openai:cat:0');
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).to.equal(true);
    const chunks: { type: string; data: Buffer }[] = [];
    for (let at = 8; at < png.length; ) {
      const length = png.readUInt32BE(at);
      const type = png.subarray(at + 4, at + 8).toString('ascii');
      const data = png.subarray(at + 8, at + 8 + length);
      expect(png.readUInt32BE(at + 8 + length), `${type} CRC`).to.equal(crc32(png.subarray(at + 4, at + 8 + length)));
      chunks.push({ type, data });
      at += 12 + length;
    }
    expect(chunks.map((c) => c.type)).to.deep.equal(['IHDR', 'IDAT', 'IEND']);
    const ihdr = chunks[0]!.data;
    expect([ihdr.readUInt32BE(0), ihdr.readUInt32BE(4), ihdr[8], ihdr[9]]).to.deep.equal([2, 2, 8, 2]);
    expect(inflateSync(chunks[1]!.data)).to.have.length(2 * (1 + 2 * 3));
    expect(fakePng('openai:cat:0').equals(png)).to.equal(true);
    expect(fakePng('openai:cat:1').equals(png)).to.equal(false);
    expect(crc32(Buffer.from('123456789'))).to.equal(0xcbf43926);
  });
});
