import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ConfigError, openSecret, sealSecret } from './index.js';

describe('secret-box (AES-256-GCM)', function () {
  const key = randomBytes(32);
  const aad = 'org-1/OPENAI_API_KEY';

  it('round-trips text, including non-ASCII and empty strings', function () {
    for (const text of ['sk-live-123', 'päss wörd ✓', '']) {
      expect(openSecret(key, sealSecret(key, text, aad), aad)).to.equal(text);
    }
  });

  it('uses the v1.<iv>.<tag>.<ciphertext> format with a fresh 12-byte IV each time', function () {
    const a = sealSecret(key, 'same', aad);
    const b = sealSecret(key, 'same', aad);
    expect(a).to.match(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]*$/);
    expect(a).to.not.equal(b);
    expect(a).to.not.contain('same');
  });

  it('refuses a tampered ciphertext, tag or IV', function () {
    const sealed = sealSecret(key, 'top secret value', aad);
    const parts = sealed.split('.');
    for (const index of [1, 2, 3]) {
      const bytes = Buffer.from(parts[index] ?? '', 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 1;
      const altered = [...parts];
      altered[index] = bytes.toString('base64url');
      expect(() => openSecret(key, altered.join('.'), aad)).to.throw(ConfigError, /does not open/);
    }
  });

  it('refuses a swapped AAD and a wrong key', function () {
    const sealed = sealSecret(key, 'value', aad);
    expect(() => openSecret(key, sealed, 'org-2/OPENAI_API_KEY')).to.throw(ConfigError, /does not open/);
    expect(() => openSecret(randomBytes(32), sealed, aad)).to.throw(ConfigError, /does not open/);
  });

  it('refuses malformed input and keys of the wrong length', function () {
    expect(() => openSecret(key, 'v2.a.b.c', aad)).to.throw(ConfigError, /malformed/);
    expect(() => openSecret(key, 'not sealed', aad)).to.throw(ConfigError, /malformed/);
    expect(() => openSecret(key, 'v1.AAAA.AAAA.AAAA', aad)).to.throw(ConfigError, /malformed/);
    expect(() => sealSecret(randomBytes(16), 'x', aad)).to.throw(ConfigError, /32 bytes/);
  });
});
