import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DefinitionError } from '../lib/index.js';
import { latestVersions, loadAgentCatalog, parseAgentObject, parseAgentSource } from './catalog.js';
import { defaultImplementation, implementations } from './registry.js';
import { rejection } from './test-context.js';
import { AGENT_TYPES } from './types.js';

/** The problem list of a DefinitionError. */
function problems(err: Error): { line?: number; column?: number; path: string; message: string }[] {
  expect(err).to.be.instanceOf(DefinitionError);
  return ((err as DefinitionError).details?.problems ?? []) as { line?: number; column?: number; path: string; message: string }[];
}

function parseError(source: string): DefinitionError {
  try {
    parseAgentSource(source, 'agents/catalog/x.yaml');
  } catch (err) {
    return err as DefinitionError;
  }
  return expect.fail('expected a DefinitionError');
}

describe('agent catalog', () => {
  it('ships the ten named agents, kpi-calculator and a2a-client, version 1 each', async () => {
    const specs = await loadAgentCatalog();
    expect(specs.map((s) => `${s.name}@${s.version}:${s.type}/${s.implementation}`)).to.have.members([
      'summarizer@1:context/summarizer',
      'marketing-swarm@1:api/http',
      'a2a-client@1:api/a2a',
      'postgres-agent@1:tool/sql',
      'image-generator-openai@1:function/function',
      'image-generator-google@1:function/function',
      'image-orchestrator@1:orchestrator/subrun',
      'finance-manager@1:orchestrator/subrun',
      'kpi-calculator@1:function/function',
      'code-planner@1:context/goal-planner',
      'codemod-runner@1:function/codemod',
      'repo-tester@1:tool/repo-tests',
    ]);
    const byName = latestVersions(specs);
    expect(byName.get('image-generator-openai')?.secrets).to.deep.equal(['OPENAI_API_KEY']);
    expect(byName.get('image-generator-openai')?.env).to.deep.equal(['OPENAI_BASE_URL']);
    expect(byName.get('image-generator-google')?.secrets).to.deep.equal(['GOOGLE_API_KEY']);
    expect(byName.get('marketing-swarm')?.config).to.include({ method: 'POST', urlEnv: 'MARKETING_SWARM_URL' });
  });

  it('has a default implementation of the right type for every agent type', () => {
    for (const type of AGENT_TYPES) expect(implementations.get(defaultImplementation(type))?.type).to.equal(type);
  });

  it('defaults implementation, config, env and secrets', () => {
    const spec = parseAgentSource('name: ask\ntype: context\nversion: 2\ndescription: Asks.\n', 'ask.yaml');
    expect(spec).to.deep.equal({
      name: 'ask',
      type: 'context',
      version: 2,
      description: 'Asks.',
      implementation: 'llm',
      config: {},
      env: [],
      secrets: [],
    });
  });

  it('reports YAML syntax errors with file:line:column', () => {
    const err = parseError('name: a\ntype: [context\n');
    expect(err.message).to.match(/^agents\/catalog\/x\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('reports a bad type at its position', () => {
    const err = parseError('name: a\ntype: robot\nversion: 1\ndescription: d\n');
    expect(err.message).to.match(/^agents\/catalog\/x\.yaml:2:7: type: /);
    expect(err.message).to.contain('context');
    expect(problems(err)[0]).to.include({ line: 2, column: 7, path: 'type' });
  });

  it('reports a missing key at the document and an unknown key at the key', () => {
    const err = parseError('name: a\ntype: api\ndescription: d\ncolour: red\n');
    const listed = problems(err);
    expect(listed.map((p) => p.message)).to.include('missing required key "version"');
    expect(listed.find((p) => p.message.startsWith('unknown key'))).to.include({ line: 4, column: 1, message: 'unknown key "colour"' });
  });

  it('reports an unknown implementation, and one of another type', () => {
    const unknown = parseError('name: a\ntype: api\nversion: 1\ndescription: d\nimplementation: carrier-pigeon\n');
    expect(unknown.message).to.equal(
      'agents/catalog/x.yaml:5:17: implementation: unknown implementation "carrier-pigeon" for type api (known: http, a2a)',
    );
    const mismatch = parseError('name: a\ntype: api\nversion: 1\ndescription: d\nimplementation: sql\n');
    expect(mismatch.message).to.contain("sql is a tool implementation, but the agent's type is api");
  });

  it('validates config with the implementation schema, positioned inside config', () => {
    const err = parseError(
      [
        'name: db',
        'type: tool',
        'version: 1',
        'description: d',
        'config:',
        '  statements:',
        '    one:',
        '      sql: SELECT $1, $2',
        '      paramOrder: [a]',
        '      params: {type: object, properties: {a: {type: string}}}',
        '      mode: sometimes',
      ].join('\n'),
    );
    expect(problems(err).map((p) => `${p.line}:${p.column} ${p.path}`)).to.deep.equal(['11:13 config.statements.one.mode']);
    const placeholders = parseError(
      [
        'name: db',
        'type: tool',
        'version: 1',
        'description: d',
        'config:',
        '  statements:',
        '    one:',
        '      sql: SELECT $1, $2',
        '      paramOrder: [a]',
        '      params: {type: object, properties: {a: {type: string}}}',
      ].join('\n'),
    );
    expect(placeholders.message).to.equal(
      'agents/catalog/x.yaml:8:12: config.statements.one.sql: uses $2 but only 1 parameter is named (paramOrder: a)',
    );
  });

  it('requires env variables and secrets an http config uses to be declared', () => {
    const err = parseError('name: hook\ntype: api\nversion: 1\ndescription: d\nconfig:\n  urlSecret: HOOK_URL\n');
    expect(err.message).to.equal('agents/catalog/x.yaml:6:14: config.urlSecret: HOOK_URL is not listed in secrets');
  });

  it('validates JSON bodies with paths instead of positions', () => {
    const err = rejectionSync(() => parseAgentObject({ name: 'Bad Name', type: 'api', version: 1, description: 'd' }, 'body'));
    expect(err.message).to.match(/^body: name: must be kebab-case/);
    expect(parseAgentObject({ name: 'ok', type: 'function', version: 1, description: 'd', config: { code: 'function main(){}' } }, 'body').config).to.deep.equal({
      code: 'function main(){}',
      limits: { timeoutMs: 5000, memoryMb: 64 },
    });
  });

  describe('loadAgentCatalog', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'baton-catalog-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('rejects the same name and version in two files, naming both', async () => {
      const entry = 'name: twin\ntype: context\nversion: 1\ndescription: d\n';
      await writeFile(join(dir, 'a.yaml'), entry);
      await writeFile(join(dir, 'b.yaml'), `# the second\n${entry}`);
      const err = await rejection(loadAgentCatalog(dir));
      expect(err).to.be.instanceOf(DefinitionError);
      expect(err.message).to.equal(`${join(dir, 'b.yaml')}:2:7: duplicate agent twin version 1 (also in ${join(dir, 'a.yaml')})`);
    });

    it('accepts two versions of one agent, and ignores subfolders and other files', async () => {
      await writeFile(join(dir, 'v1.yaml'), 'name: twin\ntype: context\nversion: 1\ndescription: d\n');
      await writeFile(join(dir, 'v2.yml'), 'name: twin\ntype: context\nversion: 2\ndescription: d\n');
      await writeFile(join(dir, 'notes.md'), 'not yaml');
      const specs = await loadAgentCatalog(dir);
      expect(specs.map((s) => s.version)).to.deep.equal([1, 2]);
      expect(latestVersions(specs).get('twin')?.version).to.equal(2);
    });

    it('reports the failing file', async () => {
      await writeFile(join(dir, 'bad.yaml'), 'name: x\ntype: tool\nversion: 0\ndescription: d\n');
      const err = await rejection(loadAgentCatalog(dir));
      expect(err.message).to.match(new RegExp(`^${join(dir, 'bad.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:10: version: `));
    });
  });
});

function rejectionSync(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return expect.fail('expected an error');
}
