import { expect } from 'chai';
import { ConfigError, DEV_API_KEY, loadConfig } from '../lib/index.js';

describe('config', function () {
  it('applies defaults and falls back to development secrets outside production', function () {
    const config = loadConfig({});
    expect(config.postgres).to.deep.equal({ url: 'postgres://postgres@127.0.0.1:5432/baton', poolMax: 20 });
    expect(config.redis).to.deep.equal({ url: 'redis://127.0.0.1:6379', prefix: 'baton' });
    expect(config.http).to.deep.equal({ port: 3000, publicUrl: 'http://localhost:3000' });
    expect(config.auth.apiKey).to.equal(DEV_API_KEY);
    expect(config.devDefaults).to.deep.equal(['BATON_API_KEY', 'BATON_WEBHOOK_SECRET']);
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
    expect(attempt({ NODE_ENV: 'production' })).to.equal(
      'invalid configuration: BATON_API_KEY: required when NODE_ENV=production; BATON_WEBHOOK_SECRET: required when NODE_ENV=production',
    );
    for (const message of [attempt({ PORT: 'x' }), attempt({ NODE_ENV: 'production' })]) expect(message).not.to.contain('\n');
  });

  it('accepts a Redis Cluster hash-tag prefix', function () {
    expect(loadConfig({ QUEUE_PREFIX: '{baton}' }).redis.prefix).to.equal('{baton}');
  });
});
