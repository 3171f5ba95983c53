/**
 * Unified diffs of repository files (jsdiff): what code-change runs hand over as their patch.
 * Paths are repository-relative; the headers are `a/<path>` / `b/<path>`, so `git apply` (which
 * strips one leading component by default) applies the result at the repository root.
 */
import { applyPatch, createTwoFilesPatch } from 'diff';

/** Repository files: repository-relative path → UTF-8 text. */
export type RepoFiles = Record<string, string>;

/**
 * A unified diff of one file (3 lines of context), or `''` when the texts are equal.
 * @param path - repository-relative, `/`-separated.
 */
export function filePatch(path: string, before: string, after: string): string {
  if (before === after) return '';
  const patch = createTwoFilesPatch(`a/${path}`, `b/${path}`, before, after, '', '', { context: 3 });
  return patch.replace(/^=+\n/, '').replace(/^(---|\+\+\+) (\S+)\t$/gm, '$1 $2');
}

/**
 * The unified diff turning `base` into `base` overlaid with `changed` (every path of `changed`, in
 * path order; a path missing from `base` is a new file).
 */
export function repoPatch(base: Readonly<RepoFiles>, changed: Readonly<RepoFiles>): string {
  return Object.keys(changed)
    .sort()
    .map((path) => filePatch(path, base[path] ?? '', changed[path] ?? ''))
    .join('');
}

/**
 * Apply the change `before → after` of one file to `current` (a text that other changes may
 * already have modified), by the unified diff between the two.
 * @returns the merged text, or `undefined` when the hunks do not apply (a conflict).
 */
export function rebase(current: string, before: string, after: string): string | undefined {
  const merged = applyPatch(current, filePatch('f', before, after));
  return merged === false ? undefined : merged;
}
