/**
 * `ctx.require('codekit')` inside the function runtime: a parser, a scope-aware traverser, a
 * format-preserving printer and a unified-diff writer, bundled by esbuild at build time
 * (`npm run build` → `dist/codekit/codekit.js`, see scripts/build-codekit.ts).
 *
 * - `parse(code, {typescript?, jsx?})` → a Babel AST (`File`) parsed by @babel/parser with the
 *   tokens recast needs to reprint only what changed.
 * - `print(ast, {quote?})` → the source text (recast: untouched code keeps its formatting;
 *   `quote: 'single' | 'double'` for string literals it prints anew).
 * - `traverse(ast, visitors)` → @babel/traverse (with `path.scope` bindings and references).
 * - `types` → @babel/types builders and predicates.
 * - `createPatch(path, oldText, newText)` → a `git apply`-able unified diff of one file
 *   (`a/<path>` / `b/<path>` headers, 3 lines of context).
 */
import { parse as babelParse } from '@babel/parser';
import traverseModule from '@babel/traverse';
import * as t from '@babel/types';
import * as recast from 'recast';
import { createTwoFilesPatch } from 'diff';

const traverse = typeof traverseModule === 'function' ? traverseModule : traverseModule.default;

function parserOptions(options) {
  const plugins = ['topLevelAwait', 'classProperties', 'classPrivateProperties', 'classPrivateMethods', 'importAttributes'];
  if (options && options.typescript) plugins.push('typescript');
  if (options && options.jsx) plugins.push('jsx');
  return {
    sourceType: 'unambiguous',
    allowImportExportEverywhere: true,
    allowReturnOutsideFunction: true,
    startLine: 1,
    tokens: true,
    errorRecovery: false,
    plugins,
  };
}

export function parse(code, options) {
  return recast.parse(code, { parser: { parse: (source) => babelParse(source, parserOptions(options)) } });
}

export function print(ast, options) {
  return recast.print(ast, options || {}).code;
}

export function createPatch(path, oldText, newText) {
  const patch = createTwoFilesPatch('a/' + path, 'b/' + path, oldText, newText, '', '', { context: 3 });
  // Drop jsdiff's "====" separator line and the tab it leaves after file names without dates.
  return patch.replace(/^=+\n/, '').replace(/^(---|\+\+\+) (\S+)\t$/gm, '$1 $2');
}

export { traverse, t as types };
