import { expect } from 'chai';
import { MAX_SENSITIVE_VALUES, clearSensitiveValues, createLogger, redactLogLine, registerSensitiveValues } from './index.js';

/** A logger writing into an array of parsed lines. */
function capture() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', service: 'test', destination: { write: (s: string) => lines.push(s) } });
  return { logger, lines };
}

describe('logger redaction of registered secret values', function () {
  afterEach(function () {
    clearSensitiveValues();
  });

  it('replaces a registered value (and its JSON-escaped, base64 and URL forms) in every line', function () {
    const secret = 'sk-"quoted"\\back/slash+päss';
    registerSensitiveValues([secret]);
    const { logger, lines } = capture();
    logger.info({ input: { apiKey2: secret }, nested: [`Bearer ${secret}`] }, `failed with ${secret}`);
    logger.child({ runId: 'r1' }).error({ err: new Error(`upstream said ${secret}`) }, 'step failed');
    logger.info({ basic: Buffer.from(secret).toString('base64'), url: `?k=${encodeURIComponent(secret)}` }, 'encoded');
    expect(lines).to.have.length(3);
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>; // still valid JSON
      expect(parsed).to.be.an('object');
      expect(line).to.not.contain(JSON.stringify(secret).slice(1, -1));
      expect(line).to.not.contain('sk-');
    }
    expect(lines[0]).to.contain('failed with [redacted]');
    expect(lines[1]).to.contain('upstream said [redacted]');
  });

  it('leaves lines alone without registered values, and forgets the least recent beyond the bound', function () {
    expect(redactLogLine('{"msg":"hello"}')).to.equal('{"msg":"hello"}');
    registerSensitiveValues(['first-secret-value']);
    registerSensitiveValues(Array.from({ length: MAX_SENSITIVE_VALUES }, (_, i) => `filler-${i}`));
    expect(redactLogLine('{"msg":"first-secret-value filler-9999"}')).to.equal('{"msg":"first-secret-value [redacted]"}');
  });

  it('costs little per line with the registry full (micro-bench)', function () {
    registerSensitiveValues(Array.from({ length: MAX_SENSITIVE_VALUES }, (_, i) => `secret-${i.toString(36)}-${'x'.repeat(20)}`));
    const line = JSON.stringify({
      level: 30,
      time: new Date().toISOString(),
      svc: 'worker',
      pid: 1234,
      runId: '0b6f9c2e-1f7a-4c1e-9d1a-3f3e5c7a9b10',
      stepId: 'fetch-prices',
      msg: 'step completed in 123 ms with output of 4567 bytes; next steps queued: summarize, report',
    });
    redactLogLine(line); // builds the scanner
    const n = 20_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i += 1) redactLogLine(line);
    const perLineUs = Number(process.hrtime.bigint() - started) / n / 1000;
    console.log(`      redactLogLine: ${perLineUs.toFixed(2)} µs per ${line.length}-byte line with ${MAX_SENSITIVE_VALUES} values`);
    expect(perLineUs, "a guard against pathological cost, not a benchmark").to.be.lessThan(1000);
  });
});
