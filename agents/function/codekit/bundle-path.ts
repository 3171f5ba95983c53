/**
 * Where the `codekit` bundle lives: `dist/codekit/codekit.js` under the project root, written by
 * `npm run build` (scripts/build-codekit.ts) from `agents/function/codekit/entry.js`. It is build
 * output (not in git): the parser and printer come from pinned packages in package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../../lib/index.js';

/** Absolute path of the bundle. */
export function codekitBundlePath(): string {
  return join(projectRoot(), 'dist', 'codekit', 'codekit.js');
}

let cached: string | undefined;

/**
 * The bundle's text, an isolate section evaluating to `(lib) => exports` (read once per thread).
 * @throws {Error} naming the path and `npm run build` when the bundle was not built.
 */
export function codekitSource(): string {
  if (cached !== undefined) return cached;
  const path = codekitBundlePath();
  if (!existsSync(path)) throw new Error(`ctx.require('codekit'): ${path} is missing; run npm run build`);
  cached = readFileSync(path, 'utf8');
  return cached;
}
