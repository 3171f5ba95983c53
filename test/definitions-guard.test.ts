/**
 * The definitions guard (scripts/definitions-guard.ts): the project's own definitions, agents and
 * modules pass; a definition naming an unknown module, module version, agent or child definition
 * version is reported at its file:line:column.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { checkDefinitions, formatProblems } from '../scripts/definitions-guard.js';

describe('definitions guard', function () {
  this.timeout(60_000);
  let dir: string;
  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'baton-guard-test-'));
  });
  after(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes on the project: every definition, agent and module valid, every definition with an evaluation fixture', async function () {
    const problems = await checkDefinitions();
    expect(problems, formatProblems(problems)).to.deep.equal([]);
  });

  it('reports unknown modules, module versions, agents and child definition versions at file:line:column', async function () {
    const file = join(dir, 'mine.yaml');
    await writeFile(
      file,
      [
        'slug: mine', // 1
        'version: 1',
        'name: Mine',
        'input: { type: object }',
        'steps:', // 5
        '  - id: lint',
        '    type: function',
        '    module: no-forbidden-imports@7',
        '  - id: rename',
        '    type: function', // 10
        '    module: rename-everything@1',
        '  - id: build',
        '    agent: codemod-runner',
        '    with:',
        '      module: require-to-import@2', // 15
        '  - id: child',
        '    type: orchestrator',
        '    run: { slug: kpi-tracking, version: 9 }',
        '',
      ].join('\n'),
    );
    const problems = await checkDefinitions([file]);
    expect(problems.map((p) => `${p.line}:${p.column}`)).to.deep.equal(['8:13', '11:13', '15:15', '18:41']);
    expect(problems.every((p) => p.file === file)).to.equal(true);
    expect(problems[0]?.message).to.equal('step lint: unknown version of module no-forbidden-imports: no-forbidden-imports@7 (known: no-forbidden-imports@1)');
    expect(problems[1]?.message).to.match(/^step rename: unknown module rename-everything@1 \(known: .*rename-symbol@1/);
    expect(problems[3]?.message).to.equal('step child: definition kpi-tracking has no version 9 (known: 1)');

    const agent = join(dir, 'agent.yaml');
    await writeFile(agent, 'slug: agent\nversion: 1\nname: A\ninput: { type: object }\nsteps:\n  - id: a\n    agent: nobody\n');
    const [unknownAgent] = await checkDefinitions([agent]);
    expect(unknownAgent).to.deep.include({ file: agent, line: 7, column: 12 });
    expect(unknownAgent?.message).to.contain('unknown agent "nobody"');
  });
});
