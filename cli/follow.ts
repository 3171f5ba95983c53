/**
 * `baton run … --follow`: a live progress bar (steps settled / total, cli-progress) fed by the
 * run's SSE stream, one line per step event above it. At a checkpoint it prints the prompt and
 * what it shows; on a TTY it asks which decision to send (continue / retry / abort, as offered),
 * otherwise it prints the approval id (decide with `baton approve`) and keeps following.
 *
 * Exit codes: 0 completed, 1 failed, 2 cancelled.
 */
import { createInterface } from 'node:readline/promises';
import cliProgress from 'cli-progress';

/** A JSON value as display text (strings as they are, anything else as JSON). */
function textOf(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : JSON.stringify(value);
}
import type { BatonClient, StreamEvent } from './client.js';

/** Exit codes of a followed run. */
export const EXIT_CODES: Readonly<Record<string, number>> = { 'run.completed': 0, 'run.failed': 1, 'run.cancelled': 2 };

/** Where {@link followRun} writes and reads. */
export interface FollowIo {
  stdout: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  /** Ask interactively at checkpoints (stdin and stdout are terminals). */
  interactive: boolean;
}

const SETTLED = new Set(['step.completed', 'step.skipped', 'step.failed', 'step.cancelled']);

/**
 * Follow `runId` to its end, drawing the progress bar on `io.stdout` when it is a terminal.
 * @returns the process exit code (see {@link EXIT_CODES}).
 */
export async function followRun(client: BatonClient, runId: string, io: FollowIo): Promise<number> {
  const run = await client.getRun(runId);
  const steps = Array.isArray(run['steps']) ? (run['steps'] as Array<{ id: string; status: string }>) : [];
  const settled = new Set(steps.filter((s) => ['completed', 'skipped', 'failed', 'cancelled'].includes(s.status)).map((s) => s.id));
  const tty = io.stdout.isTTY === true;
  const newBars = () =>
    new cliProgress.MultiBar(
      { stream: io.stdout, format: ' {bar} {value}/{total} steps | {status}', hideCursor: true, clearOnComplete: false, stopOnComplete: false, forceRedraw: true },
      cliProgress.Presets.shades_classic,
    );
  let bars = newBars();
  let bar = tty ? bars.create(steps.length, settled.size, { status: String(run.status) }) : undefined;
  /** Stop the bars after drawing them once more (MultiBar.log lines are written on a redraw). */
  const stopBars = () => {
    if (tty) bars.update();
    bars.stop();
  };
  const line = (text: string) => (tty ? bars.log(`${text}\n`) : io.stdout.write(`${text}\n`));
  line(`run ${runId} (${textOf(run['definition'])}) — ${steps.length} steps`);

  /** The prompt in progress (it is abandoned when the approval is decided elsewhere). */
  let asking: { approvalId: string; abort: AbortController; done: Promise<void> } | undefined;
  const ask = (approval: Record<string, unknown>) => {
    const decisions = (approval['decisions'] as string[] | undefined) ?? ['continue', 'abort'];
    const id = String(approval['id']);
    line(`  approval ${id} is waiting: baton approve ${id} --decision ${decisions.join('|')}`);
    if (!io.interactive) return;
    stopBars();
    const abort = new AbortController();
    const rl = createInterface({ input: io.stdin, output: io.stdout });
    const done = (async () => {
      try {
        for (;;) {
          const answer = (await rl.question(`  decide (${decisions.join(' / ')}): `, { signal: abort.signal })).trim().toLowerCase();
          if (!decisions.includes(answer)) continue;
          const comment = (await rl.question('  comment (optional): ', { signal: abort.signal })).trim();
          await client.decideApproval(id, { decision: answer, ...(comment ? { comment } : {}) }).then(
            () => io.stdout.write(`  decided: ${answer}\n`),
            (err: unknown) => io.stdout.write(`  refused: ${(err as Error).message}\n`),
          );
          return;
        }
      } catch {
        io.stdout.write('\n  (decided elsewhere)\n');
      } finally {
        rl.close();
        if (tty) {
          bars = newBars();
          bar = bars.create(steps.length, settled.size, { status: 'running' });
        }
      }
    })();
    asking = { approvalId: id, abort, done };
  };

  const final = await client.follow(runId, async (e: StreamEvent) => {
    if (e.stepId && SETTLED.has(e.type)) settled.add(e.stepId);
    if (e.type === 'step.retrying' && e.stepId) settled.delete(e.stepId);
    if (e.type.startsWith('step.') || e.type.startsWith('checkpoint.') || e.type.startsWith('run.')) {
      const error = (e.data['error'] as { message?: string } | undefined)?.message;
      line(`${e.type.padEnd(22)} ${e.stepId ?? ''}${error ? ` — ${error}` : ''}`);
    }
    bar?.update(settled.size, { status: e.type });
    if (e.type === 'checkpoint.requested') {
      const approval = (e.data['approval'] ?? {}) as Record<string, unknown>;
      line(`  ${textOf(approval['prompt'])}`);
      if (approval['show'] !== null && approval['show'] !== undefined) line(`  ${JSON.stringify(approval['show'])}`);
      ask(approval);
    }
    const approvalId = ((e.data['approval'] ?? {}) as { id?: string }).id ?? (e.data['approvalId'] as string | undefined);
    if (asking && (e.type === 'checkpoint.resolved' || e.type === 'checkpoint.expired' || e.type.startsWith('run.')) && (approvalId === asking.approvalId || e.type.startsWith('run.'))) {
      asking.abort.abort();
      await asking.done;
      asking = undefined;
    }
  });
  bar?.update(settled.size, { status: final.type });
  stopBars();
  const end = await client.getRun(runId);
  if (final.type === 'run.completed') io.stdout.write(`${JSON.stringify(end.output ?? null, null, 2)}\n`);
  else io.stdout.write(`${final.type}: ${JSON.stringify(end.error ?? null)}\n`);
  return EXIT_CODES[final.type] ?? 1;
}
