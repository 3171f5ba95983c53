/** Start processes from the Procfile's own lines (used by the demo and the tests). */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../lib/index.js';

/** The command of a Procfile process type, split into program and arguments. */
export function procfileCommand(processType: string): string[] {
  const text = readFileSync(join(projectRoot(), 'Procfile'), 'utf8');
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Za-z0-9_-]+):\s*(.+)$/.exec(line.trim());
    if (m?.[1] === processType && m[2]) return m[2].split(/\s+/);
  }
  throw new Error(`Procfile has no "${processType}" process`);
}

/**
 * Spawn a Procfile process type in the project root.
 * @param env - the whole environment of the child (merged over this process's PATH).
 * @param extraArgs - appended to the Procfile command (e.g. `--agents tool`).
 */
export function spawnProcess(
  processType: string,
  env: Record<string, string>,
  options: { extraArgs?: string[]; stdio?: 'inherit' | 'pipe' | 'ignore' } = {},
): ChildProcess {
  const [program, ...args] = procfileCommand(processType);
  if (!program) throw new Error(`Procfile "${processType}" has an empty command`);
  return spawn(program, [...args, ...(options.extraArgs ?? [])], {
    cwd: projectRoot(),
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: options.stdio ?? 'pipe',
  });
}

/** Resolve when the child exits (with its code or signal). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
