import { expect } from 'chai';
import { REDACTED, Redactor, restoreSensitiveInput, sealedStrings, splitSensitiveInput, type JsonSchema } from './index.js';

describe('Redactor', function () {
  const secret = 'sk-live-abc/123+xyz';
  const redactor = new Redactor([secret, 'ab', '']);

  it('replaces every occurrence inside strings, deep, without touching keys or the original', function () {
    const value = {
      message: `auth failed for ${secret} (again ${secret})`,
      nested: [{ header: `Bearer ${secret}` }, 42, null, true],
      [secret]: 'key stays',
    };
    const copy = redactor.redact(value);
    expect(copy).to.deep.equal({
      message: `auth failed for ${REDACTED} (again ${REDACTED})`,
      nested: [{ header: `Bearer ${REDACTED}` }, 42, null, true],
      [secret]: 'key stays',
    });
    expect(value.message).to.contain(secret);
  });

  it('replaces the base64, base64url and URL-encoded forms', function () {
    const b64 = Buffer.from(secret).toString('base64');
    const b64url = Buffer.from(secret).toString('base64url');
    const url = encodeURIComponent(secret);
    expect(redactor.redactText(`basic ${b64} / ${b64url} / ?key=${url}`)).to.equal(`basic ${REDACTED} / ${REDACTED} / ?key=${REDACTED}`);
  });

  it('replaces values shorter than 4 characters only where a whole string equals them', function () {
    expect(redactor.redact({ pin: 'ab', text: 'absolutely fabulous' })).to.deep.equal({ pin: REDACTED, text: 'absolutely fabulous' });
  });

  it('is empty without values and then returns its input as is', function () {
    const none = new Redactor([]);
    expect(none.isEmpty).to.equal(true);
    const value = { a: 'b' };
    expect(none.redact(value)).to.equal(value);
    expect(redactor.isEmpty).to.equal(false);
  });
});

describe('splitSensitiveInput / restoreSensitiveInput', function () {
  const schema: JsonSchema = {
    type: 'object',
    $defs: { credential: { type: 'string', writeOnly: true } },
    definitions: { login: { type: 'object', properties: { password: { type: 'string', format: 'password' } } } },
    properties: {
      name: { type: 'string' },
      token: { $ref: '#/$defs/credential' },
      login: { $ref: '#/definitions/login' },
      accounts: { type: 'array', items: { type: 'object', properties: { key: { type: 'string', writeOnly: true }, id: { type: 'number' } } } },
      headers: { type: 'object', additionalProperties: { type: 'string', writeOnly: true } },
      either: { anyOf: [{ type: 'string' }, { type: 'string', format: 'password' }] },
      tuple: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'string', writeOnly: true }] },
    },
  };
  const input = {
    name: 'demo',
    token: 'tok-1234',
    login: { user: 'alice', password: 'hunter22' },
    accounts: [
      { id: 1, key: 'k-one' },
      { id: 2, key: 'k-two' },
    ],
    headers: { 'X-Api-Key': 'hdr-secret' },
    either: 'maybe-secret',
    tuple: ['public', 'private'],
  };

  it('replaces every writeOnly / format: password field and returns the real values with their paths', function () {
    const { redacted, sealed } = splitSensitiveInput(schema, input);
    expect(redacted).to.deep.equal({
      name: 'demo',
      token: REDACTED,
      login: { user: 'alice', password: REDACTED },
      accounts: [
        { id: 1, key: REDACTED },
        { id: 2, key: REDACTED },
      ],
      headers: { 'X-Api-Key': REDACTED },
      either: REDACTED,
      tuple: ['public', REDACTED],
    });
    expect(sealed).to.deep.include({ path: ['login', 'password'], value: 'hunter22' });
    expect(sealed).to.deep.include({ path: ['accounts', 1, 'key'], value: 'k-two' });
    expect(sealed).to.have.length(7);
    expect(sealedStrings(sealed)).to.include.members(['tok-1234', 'hdr-secret']);
    expect(input.token, 'input untouched').to.equal('tok-1234');
  });

  it('restores the real input', function () {
    const { redacted, sealed } = splitSensitiveInput(schema, input);
    expect(restoreSensitiveInput(redacted, sealed)).to.deep.equal(input);
    expect(JSON.stringify(redacted)).to.not.contain('hunter22');
  });

  it('seals the whole input when the root schema is writeOnly, and nothing without a schema', function () {
    const whole = splitSensitiveInput({ writeOnly: true }, { a: 1 });
    expect(whole.redacted).to.equal(REDACTED);
    expect(restoreSensitiveInput(whole.redacted, whole.sealed)).to.deep.equal({ a: 1 });
    expect(splitSensitiveInput(true, { a: 1 })).to.deep.equal({ redacted: { a: 1 }, sealed: [] });
  });

  it('survives recursive $refs', function () {
    const tree: JsonSchema = {
      $ref: '#/$defs/node',
      $defs: { node: { type: 'object', properties: { secret: { writeOnly: true }, child: { $ref: '#/$defs/node' } } } },
    };
    const { redacted } = splitSensitiveInput(tree, { secret: 's1', child: { secret: 's2', child: { secret: 's3' } } });
    expect(redacted).to.deep.equal({ secret: REDACTED, child: { secret: REDACTED, child: { secret: REDACTED } } });
  });
});
