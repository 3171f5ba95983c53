/**
 * Build step (`npm run build`, after tsc): bundle `agents/function/codekit/entry.js` — @babel/parser,
 * @babel/traverse, @babel/types, recast and diff, all pinned in package.json — with esbuild into
 * one script for the QuickJS function runtime, `dist/codekit/codekit.js`. The file is an isolate
 * section, `(function (lib) { …; return exports; })`, that `ctx.require('codekit')` evaluates on
 * first use. Node built-ins the packages mention but never call on this path (`os`, `fs`, `path`,
 * `tty`, `util`) are replaced by stubs, and `process` by a frozen stand-in.
 *
 * Usage: `node dist/scripts/build-codekit.js` (or `npx tsx scripts/build-codekit.ts`).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { projectRoot } from '../lib/index.js';
import { codekitBundlePath } from '../agents/function/codekit/bundle-path.js';

const STUBS: Readonly<Record<string, string>> = {
  os: 'module.exports = { EOL: "\\n" };',
  fs: 'module.exports = {};',
  path: 'module.exports = {};',
  tty: 'module.exports = { isatty: function () { return false; } };',
  util: 'module.exports = { inspect: function (v) { return String(v); } };',
};

const nodeStubs: Plugin = {
  name: 'node-stubs',
  setup(builder) {
    builder.onResolve({ filter: /^(os|fs|path|tty|util)$/ }, (args) => ({ path: args.path, namespace: 'stub' }));
    builder.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({ contents: STUBS[args.path] ?? 'module.exports = {};', loader: 'js' }));
  },
};

/**
 * Bundle codekit and write it.
 * @returns the output path and its size in bytes.
 */
export async function buildCodekit(): Promise<{ path: string; bytes: number }> {
  const result = await build({
    entryPoints: [join(projectRoot(), 'agents', 'function', 'codekit', 'entry.js')],
    bundle: true,
    format: 'iife',
    globalName: '__codekit',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    write: false,
    plugins: [nodeStubs],
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
  });
  const bundle = result.outputFiles[0]?.text;
  if (bundle === undefined) throw new Error('esbuild produced no output');
  const section =
    '(function (lib) {\n' +
    'var process = Object.freeze({ env: {}, argv: [], platform: "quickjs", emitWarning: function () {}, stdout: {}, stderr: {} });\n' +
    `${bundle}\nreturn __codekit;\n})`;
  const path = codekitBundlePath();
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, section);
  return { path, bytes: Buffer.byteLength(section) };
}

if (process.argv[1] !== undefined && /build-codekit\.(ts|js)$/.test(process.argv[1])) {
  const { path, bytes } = await buildCodekit();
  process.stdout.write(`codekit: ${path} (${bytes} bytes)\n`);
}
