/**
 * Repositories as code-change runs carry them (`{files: {path: text}}`), read from or written to
 * directories, and `git apply` of a run's patch. Shared by the code-change tests and `npm run eval`.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../lib/index.js';

const run = promisify(execFile);

/** Repository-relative path → UTF-8 text. */
export type RepoFiles = Record<string, string>;

/** Every file under `dir` (not `node_modules`, not `.git`), by `/`-separated relative path, sorted. */
export async function readRepo(dir: string): Promise<RepoFiles> {
  const files: RepoFiles = {};
  const walk = async (at: string): Promise<void> => {
    for (const entry of (await readdir(at, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name === 'node_modules' || entry.name === '.git') continue;
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else files[relative(dir, path).split('\\').join('/')] = await readFile(path, 'utf8');
    }
  };
  await walk(dir);
  return files;
}

/** A fixture repository of `fixtures/repos/<name>`. */
export function fixtureRepo(name: string): Promise<RepoFiles> {
  return readRepo(join(projectRoot(), 'fixtures', 'repos', name));
}

/** Write `files` into a fresh temporary directory; returns its path. */
export async function writeRepo(files: Readonly<RepoFiles>, prefix = 'baton-repo-'): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

/**
 * `git init` in `root` and `git apply` the patch there (at the repository root).
 * @throws the child process error (with git's stderr) when the patch does not apply.
 */
export async function gitApply(root: string, patch: string): Promise<void> {
  await run('git', ['init', '-q'], { cwd: root });
  const file = join(root, '.git', 'baton.patch');
  await writeFile(file, patch);
  await run('git', ['apply', '--check', file], { cwd: root });
  await run('git', ['apply', file], { cwd: root });
}

/** `node --test` in `root`: its exit code and output. */
export async function nodeTest(root: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--test'], { cwd: root, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}
