import { expect } from 'chai';
import { ConfigError, DEV_API_KEY, loadConfig } from '../lib/index.js';

function attemptProduction() {
  return loadConfig({
    NODE_ENV: 'production',
    BATON_API_KEY: 'k'.repeat(20),
    BATON_WEBHOOK_SECRET: `whsec_${Buffer.alloc(24, 1).toString('base64')}`,
    BATON_SECRETS_KEY: Buffer.alloc(32, 2).toString('base64'),
    OUTBOUND_ALLOW: '10.1.0.0/16, ',
  });
}

describe('config', function () {
  it('applies defaults and falls back to development secrets outside production', function () {
    const config = loadConfig({});
    expect(config.postgres).to.deep.equal({ url: 'postgres://postgres@127.0.0.1:5432/baton', poolMax: 8 });
    expect(config.redis).to.deep.equal({ url: 'redis://127.0.0.1:6379', prefix: 'baton', keepCompletedJobs: 0, commandTimeoutMs: 1000 });
    expect(config.http).to.deep.equal({ port: 3000, publicUrl: 'http://localhost:3000', trustProxy: 'loopback, linklocal, uniquelocal' });
    expect(config.auth.apiKey).to.equal(DEV_API_KEY);
    expect(config.devDefaults).to.deep.equal(['BATON_API_KEY', 'BATON_WEBHOOK_SECRET', 'BATON_SECRETS_KEY']);
    expect(config.outbound.allow).to.include('127.0.0.0/8');
    expect(config.secrets.key.length).to.equal(32);
  });

  it('names the variable and what it expects, on one line', function () {
    const attempt = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(attempt({ PORT: 'eighty' })).to.match(/^invalid configuration: PORT: expected a TCP port/);
    expect(attempt({ BATON_WEBHOOK_SECRET: 'secret' })).to.contain('BATON_WEBHOOK_SECRET: expected a Standard Webhooks secret');
    expect(attempt({ REDIS_URL: 'localhost:6379' })).to.contain('REDIS_URL: expected a redis://');
    expect(attempt({ TRUST_PROXY: 'proxy.internal' })).to.contain('TRUST_PROXY: expected true, false, a number of hops');
    expect(attempt({ TRUST_PROXY: '10.0.0.0/33' })).to.contain('TRUST_PROXY: expected');
    expect(loadConfig({ TRUST_PROXY: 'false' }).http.trustProxy).to.equal(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).http.trustProxy).to.equal(2);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8, fd00::1' }).http.trustProxy).to.equal('loopback, 10.0.0.0/8, fd00::1');
    expect(attempt({ NODE_ENV: 'production' })).to.equal(
      'invalid configuration: BATON_API_KEY: required when NODE_ENV=production; BATON_WEBHOOK_SECRET: required when NODE_ENV=production; BATON_SECRETS_KEY: required when NODE_ENV=production',
    );
    for (const message of [attempt({ PORT: 'x' }), attempt({ NODE_ENV: 'production' })]) expect(message).not.to.contain('\n');
  });

  it('keeps Baton\'s own credentials out of the agents\' environment, and loopback out of production', function () {
    const config = loadConfig({ BATON_API_KEY: 'k'.repeat(20), DATABASE_URL: 'postgres://x/y', OPENAI_BASE_URL: 'http://fake', LLM_API_KEY: 'sk' });
    expect(config.agentEnv).to.deep.equal({ OPENAI_BASE_URL: 'http://fake' });
    expect(attemptProduction().outbound.allow).to.deep.equal(['10.1.0.0/16']);
    expect(loadConfig({ LLM_BASE_URL: 'http://llm.internal:8080/v1' }).outbound.allow, 'the configured LLM endpoint is allowed').to.include('llm.internal');
    expect(() => loadConfig({ BATON_SECRETS_KEY: 'short' })).to.throw(ConfigError, /BATON_SECRETS_KEY: expected a 32-byte key/);
  });

  it('treats empty secrets as unset (docker compose passes ${VAR:-} as "")', function () {
    const config = loadConfig({ BATON_API_KEY: '', BATON_WEBHOOK_SECRET: ' ', BATON_SECRETS_KEY: '', MARKETING_SWARM_URL: '' });
    expect(config.auth.apiKey).to.equal(DEV_API_KEY);
    expect(config.devDefaults).to.have.length(3);
    expect(config.agentEnv).not.to.have.property('MARKETING_SWARM_URL');
  });

  it('takes an optional platform-admin key (BATON_ADMIN_API_KEY), unlike any organization key', function () {
    expect(loadConfig({}).auth.adminApiKey, 'unset: the platform routes are closed').to.equal(undefined);
    expect(attemptProduction().auth.adminApiKey, 'not required in production').to.equal(undefined);
    expect(loadConfig({ BATON_ADMIN_API_KEY: 'a'.repeat(20) }).auth.adminApiKey).to.equal('a'.repeat(20));
    expect(loadConfig({ BATON_ADMIN_API_KEY: ' ' }).auth.adminApiKey).to.equal(undefined);
    expect(() => loadConfig({ BATON_ADMIN_API_KEY: 'short' })).to.throw(ConfigError, /BATON_ADMIN_API_KEY: expected an API key of at least 16 characters/);
    expect(() => loadConfig({ BATON_ADMIN_API_KEY: 'k'.repeat(20), BATON_API_KEY: 'k'.repeat(20) })).to.throw(ConfigError, /BATON_ADMIN_API_KEY: must differ from BATON_API_KEY/);
    expect(() => loadConfig({ BATON_ADMIN_API_KEY: DEV_API_KEY })).to.throw(ConfigError, /must differ/);
  });

  it('bounds run input by RUN_INPUT_MAX_BYTES (default 1 MiB)', function () {
    expect(loadConfig({}).runInput.maxBytes).to.equal(1024 * 1024);
    expect(loadConfig({ RUN_INPUT_MAX_BYTES: '2048', BATON_API_KEY: '' }).runInput.maxBytes).to.equal(2048);
    expect(() => loadConfig({ RUN_INPUT_MAX_BYTES: '0' })).to.throw(ConfigError, /RUN_INPUT_MAX_BYTES: expected bytes/);
  });

  it('accepts a Redis Cluster hash-tag prefix', function () {
    expect(loadConfig({ QUEUE_PREFIX: '{baton}' }).redis.prefix).to.equal('{baton}');
  });
});
