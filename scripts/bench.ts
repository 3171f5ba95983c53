/**
 * `npm run bench [-- flags]`: Baton against raw BullMQ, side by side in one invocation, printed as
 * the markdown table of issue 8 (`scripts/bench-side-by-side.ts` says what each row measures).
 *
 * Sizes: `--runs 200 --steps 20` (throughput), `--duration 5 --connections 20` (autocannon on
 * `POST /v1/runs`), `--hop-runs 5`, `--approval-runs 5 --pairs 10`, `--count-runs 20`
 * (statement count); choices: `--step-kind context|function`, `--shape chain|wide`,
 * `--pool-max 10` (Baton's `DATABASE_POOL_MAX`), `--settle-ms 50`.
 *
 * Other phases, one at a time: `--only kpi [--runs N --approvers C]` (KPI-tracking runs,
 * `scripts/bench-kpi.ts`), `--only function [--calls M]` (the function-step runtime,
 * `scripts/bench-function.ts`). `--only table` is the default.
 */
import { parseArgs } from 'node:util';
import { loadConfig, runEntry } from '../lib/index.js';
import { STEP_KINDS, SHAPES, type Shape, type StepKind } from './bench-baton.js';
import { benchFunctionRuntime } from './bench-function.js';
import { benchKpiRuns } from './bench-kpi.js';
import { benchSideBySide } from './bench-side-by-side.js';
import { StackError } from './local-stack.js';

const PHASES = ['table', 'kpi', 'function'] as const;

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new StackError(`--${name}: expected a positive integer, got "${value}"`);
  return n;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new StackError(`--${name}: expected ${allowed.join(' or ')}, got "${value}"`);
  return value as T;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', default: 'table' },
      runs: { type: 'string' },
      steps: { type: 'string', default: '20' },
      duration: { type: 'string', default: '5' },
      connections: { type: 'string', default: '20' },
      'hop-runs': { type: 'string', default: '5' },
      'approval-runs': { type: 'string', default: '5' },
      pairs: { type: 'string', default: '10' },
      'count-runs': { type: 'string', default: '20' },
      'step-kind': { type: 'string', default: 'context' },
      shape: { type: 'string', default: 'chain' },
      'pool-max': { type: 'string', default: '10' },
      'settle-ms': { type: 'string', default: '50' },
      approvers: { type: 'string', default: '10' },
      calls: { type: 'string', default: '2000' },
    },
  });
  const only = oneOf('only', values.only, PHASES);
  const config = loadConfig();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  if (only === 'kpi') return benchKpiRuns(config, values.runs ?? '200', values.approvers, log);
  if (only === 'function') return benchFunctionRuntime(config, positive('calls', values.calls), log);
  const settleMs = Number(values['settle-ms']);
  if (!Number.isInteger(settleMs) || settleMs < 0) throw new StackError(`--settle-ms: expected milliseconds, got "${values['settle-ms']}"`);
  const steps = positive('steps', values.steps);
  if (steps < 2) throw new StackError('--steps: expected at least 2 (a hop needs two steps)');
  await benchSideBySide(
    config,
    {
      runs: positive('runs', values.runs ?? '200'),
      steps,
      durationS: positive('duration', values.duration),
      connections: positive('connections', values.connections),
      hopRuns: positive('hop-runs', values['hop-runs']),
      approvalRuns: positive('approval-runs', values['approval-runs']),
      pairs: positive('pairs', values.pairs),
      countRuns: positive('count-runs', values['count-runs']),
      stepKind: oneOf<StepKind>('step-kind', values['step-kind'], STEP_KINDS),
      shape: oneOf<Shape>('shape', values.shape, SHAPES),
      poolMax: positive('pool-max', values['pool-max']),
      settleMs,
    },
    log,
  );
}

runEntry(process, 'bench failed', main, { exitOnSuccess: true });
