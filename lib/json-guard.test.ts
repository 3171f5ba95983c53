import { expect } from 'chai';
import { MAX_JSON_DEPTH, cleanJsonText, jsonProblem, markClean, parseDurationMs, stringProblem } from './index.js';

/** `[[…[leaf]…]]`, `levels` arrays deep. */
function nested(levels: number, leaf: unknown = 1): unknown {
  let value: unknown = leaf;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

describe('json guard', function () {
  it('finds NUL and lone surrogates, and accepts paired ones', function () {
    expect(stringProblem('plain, é, 💥')).to.equal(undefined);
    expect(stringProblem('a\u0000b')).to.match(/NUL/);
    expect(stringProblem('\ud800')).to.match(/lone surrogate \(\\uD800\)/);
    expect(stringProblem('x\udc00')).to.match(/lone surrogate \(\\uDC00\)/);
    expect(stringProblem('\udc00\ud800')).to.match(/lone surrogate/);
  });

  it('names the path of the first bad string or key, in document order', function () {
    expect(jsonProblem({ a: 'ok', b: [1, { c: 'x\u0000' }], d: '\ud800' })).to.deep.equal({ path: ['b', 1, 'c'], message: 'contains a NUL character (\\u0000), which is not accepted' });
    expect(jsonProblem({ ok: { 'bad\u0000': 1 } })?.path).to.deep.equal(['ok', 'bad\u0000']);
    expect(jsonProblem('\u0000')?.path).to.deep.equal([]);
    expect(jsonProblem({ a: [1, null, true, 'fine'] })).to.equal(undefined);
  });

  it(`accepts ${MAX_JSON_DEPTH} levels of nesting and refuses one more, at any depth without recursion`, function () {
    expect(jsonProblem(nested(MAX_JSON_DEPTH))).to.equal(undefined);
    expect(jsonProblem(nested(MAX_JSON_DEPTH + 1))?.path).to.have.length(MAX_JSON_DEPTH);
    expect(jsonProblem(JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)))?.message).to.match(/more than 64 levels/);
    expect(jsonProblem(nested(3), 2)?.path).to.deep.equal([0, 0]);
  });

  it('judges clean JSON text by its bytes only when no \\u escape or deep nesting could hide a problem', function () {
    const bytes = (text: string) => Buffer.from(text, 'utf8');
    expect(cleanJsonText(bytes('{"definition":"d","input":{"a":["é","💥",1]}}'))).to.equal(true);
    expect(cleanJsonText(bytes('{"a":"\\u0000"}'))).to.equal(false); // a NUL escape
    expect(cleanJsonText(bytes('{"a":"\\ud800"}'))).to.equal(false); // a lone surrogate escape
    expect(cleanJsonText(bytes('{"a":"\\\\u"}'))).to.equal(true); // an escaped backslash, then a plain u
    expect(cleanJsonText(bytes('{"a":"\\\\\\u0000"}'))).to.equal(false); // an escaped backslash, then a NUL escape
    expect(cleanJsonText(bytes('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)))).to.equal(true);
    expect(cleanJsonText(bytes('['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1)))).to.equal(false);
    expect(cleanJsonText(bytes(JSON.stringify(Array.from({ length: 500 }, () => ({ a: [1] })))))).to.equal(true); // many brackets, shallow
    expect(cleanJsonText(bytes(JSON.stringify({ s: '['.repeat(100) + '\\"{' })))).to.equal(true); // brackets and quotes inside a string
    expect(cleanJsonText(bytes(JSON.stringify({ s: '"' }) + ' '))).to.equal(true);
    // Whatever the bytes say, the parsed value of a text they pass is clean.
    for (const text of ['{"a":"x"}', '[[["y"]]]', '{"k":{"l":[1,2,{"m":null}]}}']) {
      expect(cleanJsonText(bytes(text))).to.equal(true);
      expect(jsonProblem(JSON.parse(text))).to.equal(undefined);
    }
  });

  it('skips values marked clean, and only for checks at the default depth or less', function () {
    const inner = nested(10);
    const body = { input: inner };
    markClean(body);
    expect(jsonProblem(inner)).to.equal(undefined);
    expect(jsonProblem(inner, 5)?.message).to.match(/more than 5 levels/);
    expect(jsonProblem({ a: 'a\u0000' })?.path).to.deep.equal(['a']); // an unmarked value is walked
  });

  it('treats an empty or malformed duration as no duration (never throws)', function () {
    expect(parseDurationMs('')).to.equal(undefined);
    expect(parseDurationMs('   ')).to.equal(undefined);
    expect(parseDurationMs('soon')).to.equal(undefined);
    expect(parseDurationMs('90s')).to.equal(90_000);
  });
});
