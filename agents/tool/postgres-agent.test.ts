import { expect } from 'chai';
import { ValidationError } from '../../lib/index.js';
import { testContext, throwingSql } from '../test-context.js';
import { NAMED_QUERIES, postgresAgent, prepareQuery, ROW_LIMIT } from './postgres-agent.js';

/** The database is never reached: `sql` throws on any use, so these errors come first. */
const ctx = () => testContext({ sql: throwingSql() });

async function validationError(input: unknown): Promise<ValidationError> {
  try {
    await postgresAgent.run(input, ctx());
  } catch (err) {
    expect(err).to.be.instanceOf(ValidationError);
    return err as ValidationError;
  }
  return expect.fail('expected a ValidationError');
}

const valid = { query: 'prices_in_window', params: { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' } };

describe('postgres-agent (validation, no database)', () => {
  it('is a tool agent with the prices_in_window query', () => {
    expect(postgresAgent.type).to.equal('tool');
    expect(Object.keys(NAMED_QUERIES)).to.include('prices_in_window');
  });

  it('binds validated params in paramOrder and appends the row limit', () => {
    const { text, values } = prepareQuery(valid);
    expect(values).to.deep.equal([['AAPL', 'MSFT'], '2005-01-01', '2009-12-31']);
    expect(text).to.match(/WHERE symbol = ANY\(\$1::text\[\]\) AND date BETWEEN \$2::date AND \$3::date/);
    expect(text).to.match(new RegExp(`LIMIT ${ROW_LIMIT + 1}$`));
  });

  it('rejects an unknown query on field query, listing the known ones', async () => {
    const err = await validationError({ query: 'drop_everything', params: {} });
    expect(err.field).to.equal('query');
    expect(err.message).to.contain('drop_everything').and.to.contain('prices_in_window');
  });

  it('does not treat Object.prototype members as queries', async () => {
    const err = await validationError({ query: 'toString', params: {} });
    expect(err.field).to.equal('query');
  });

  it('rejects a bad date on field params.from', async () => {
    for (const from of ['2005-13-01', '2005-02-30', '01/01/2005', 20050101]) {
      const err = await validationError({ ...valid, params: { ...valid.params, from } });
      expect(err.field, String(from)).to.equal('params.from');
      expect(err.message).to.match(/^params\.from: /);
    }
  });

  it('rejects from after to on field params.to', async () => {
    const err = await validationError({ ...valid, params: { ...valid.params, from: '2010-01-01' } });
    expect(err.field).to.equal('params.to');
  });

  it('requires 1 to 20 symbols', async () => {
    expect((await validationError({ ...valid, params: { ...valid.params, symbols: [] } })).field).to.equal('params.symbols');
    const many = Array.from({ length: 21 }, (_, i) => `S${i}`);
    expect((await validationError({ ...valid, params: { ...valid.params, symbols: many } })).field).to.equal('params.symbols');
    expect((await validationError({ ...valid, params: { ...valid.params, symbols: ['AAPL', 7] } })).field).to.equal(
      'params.symbols.1',
    );
  });

  it('rejects a missing query name and non-object params', async () => {
    expect((await validationError({ params: {} })).field).to.equal('query');
    expect((await validationError({ query: 'prices_in_window', params: 'symbols=AAPL' })).field).to.equal('params');
    expect((await validationError(null)).field).to.equal('input');
  });
});
