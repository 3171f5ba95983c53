import { expect } from 'chai';
import { parseRetryAfter } from './http-errors.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('2', now)).to.equal(2000);
    expect(parseRetryAfter(' 120 ', now)).to.equal(120_000);
  });
  it('reads an HTTP-date relative to now, never negative', () => {
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 23:00:00 GMT', now)).to.equal(0);
  });
  it('ignores missing or invalid values', () => {
    expect(parseRetryAfter(undefined, now)).to.equal(undefined);
    expect(parseRetryAfter('soon', now)).to.equal(undefined);
    expect(parseRetryAfter('-5', now)).to.equal(undefined);
  });
});
