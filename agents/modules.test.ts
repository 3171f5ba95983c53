import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DefinitionError, ValidationError } from '../lib/index.js';
import { loadModules, moduleCodeResolver, parseModuleRef } from './modules.js';
import { rejection } from './test-context.js';

describe('step modules', () => {
  it('loads the shipped modules with their input schemas and code', async () => {
    const modules = await loadModules();
    expect([...modules.keys()]).to.deep.equal([
      'image-generator-google@1',
      'image-generator-openai@1',
      'kpi-metrics@1',
      'no-forbidden-imports@1',
      'rename-symbol@1',
      'require-to-import@1',
    ]);
    const kpi = modules.get('kpi-metrics@1');
    expect(kpi).to.deep.include({ ref: 'kpi-metrics@1', name: 'kpi-metrics', version: 1 });
    expect(kpi?.input).to.deep.include({ required: ['prices'] });
    expect(kpi?.code).to.match(/function main\(input\)/);
    expect(await moduleCodeResolver(modules)('kpi-metrics@1')).to.equal(kpi?.code);
  });

  it('parses references name@version', () => {
    expect(parseModuleRef('image-generator-openai@12')).to.deep.equal({ name: 'image-generator-openai', version: 12 });
    for (const bad of ['kpi', 'kpi@0', 'Kpi@1', 'kpi@1.2', '@1']) {
      try {
        parseModuleRef(bad);
        expect.fail(bad);
      } catch (err) {
        expect(err, bad).to.be.instanceOf(ValidationError);
        expect((err as ValidationError).field).to.equal('module');
      }
    }
  });

  describe('loader errors', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'baton-modules-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });
    const write = async (folder: string, yaml: string, main?: string) => {
      await mkdir(join(dir, folder));
      await writeFile(join(dir, folder, 'module.yaml'), yaml);
      if (main !== undefined) await writeFile(join(dir, folder, 'main.js'), main);
    };

    it('positions module.yaml problems', async () => {
      await write('m@1', 'name: m\nversion: 1\ndescription: d\ninput: {type: object}\nextra: 1\n', 'function main() {}');
      const err = await rejection(loadModules(dir));
      expect(err).to.be.instanceOf(DefinitionError);
      expect(err.message).to.equal(`${join(dir, 'm@1', 'module.yaml')}:5:1: unknown key "extra"`);
    });

    it('requires the folder to be name@version and the input schema to compile', async () => {
      await write('m@1', 'name: m\nversion: 2\ndescription: d\ninput: {type: object}\n', 'function main() {}');
      expect((await rejection(loadModules(dir))).message).to.contain('1:7: the folder must be named m@2 (it is m@1)');
      await rm(join(dir, 'm@1'), { recursive: true });
      await write('m@1', 'name: m\nversion: 1\ndescription: d\ninput: {type: 12}\n', 'function main() {}');
      expect((await rejection(loadModules(dir))).message).to.match(/module\.yaml:4:8: input: not a valid JSON Schema/);
    });

    it('requires main.js defining main', async () => {
      await write('m@1', 'name: m\nversion: 1\ndescription: d\ninput: {type: object}\n', 'const main = () => 1;');
      expect((await rejection(loadModules(dir))).message).to.equal(`${join(dir, 'm@1', 'main.js')}: main.js must define function main(input, ctx)`);
      await writeFile(join(dir, 'm@1', 'main.js'), 'async function main(input, ctx) { return 1; }');
      expect([...(await loadModules(dir)).keys()]).to.deep.equal(['m@1']);
      await mkdir(join(dir, 'not-a-ref'));
      expect((await rejection(loadModules(dir))).message).to.contain('module folders are named name@version');
    });
  });
});
