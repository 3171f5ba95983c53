/**
 * `kpi-calculator` (type `function`): per-symbol KPIs of a price series, computed by
 * `library/kpi-metrics.js` inside the QuickJS sandbox (formulas are documented in that file).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentError, projectRoot } from '../../lib/index.js';
import type { NamedAgent } from '../types.js';
import { parseInput } from '../validation.js';
import { functionAgent } from './sandbox.js';

/** Path of the KPI script relative to the project root (read from the source tree, not dist/). */
export const KPI_SCRIPT_PATH = 'agents/function/library/kpi-metrics.js';

/** Wall-clock budget of one KPI computation, in milliseconds. */
export const KPI_TIMEOUT_MS = 5_000;
/** Heap budget of one KPI computation, in bytes (64 MiB). */
export const KPI_MEMORY_BYTES = 64 * 1024 * 1024;

/**
 * Step input: `{ prices: [{ symbol, date: 'YYYY-MM-DD', price }] }`, rows in any order.
 * Shape only: domain rules (positive prices, at least one row, no duplicate dates) are checked by
 * the script and fail the step as an `AgentError`.
 */
export const KpiInput = z.object({
  prices: z.array(
    z.object({
      symbol: z.string().min(1),
      date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'expected a date as YYYY-MM-DD' }),
      price: z.number(),
    }),
  ),
});
export type KpiInput = z.infer<typeof KpiInput>;

/** One day of the best or worst monthly return. */
export interface KpiMonth {
  /** `YYYY-MM-DD` of the price that closed the month. */
  date: string;
  /** Return of that month, in percent. */
  returnPct: number;
}

/** KPIs of one symbol (unrounded; percentages as percent, e.g. `12.5` for 12.5 %). */
export interface SymbolKpis {
  firstPrice: number;
  lastPrice: number;
  totalReturnPct: number;
  /** `null` when first and last date coincide (a single price). */
  cagrPct: number | null;
  maxDrawdownPct: number;
  /** Annualised (√12) sample standard deviation of monthly returns; `null` with < 2 returns. */
  volatilityPct: number | null;
  bestMonth: KpiMonth | null;
  worstMonth: KpiMonth | null;
}

/** Step output: KPIs by symbol, keys in alphabetical order. */
export interface KpiOutput {
  kpis: Record<string, SymbolKpis>;
}

/** Read the KPI script from the project tree. @throws {AgentError} if it cannot be read. */
async function loadKpiScript(): Promise<string> {
  const path = join(projectRoot(), KPI_SCRIPT_PATH);
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new AgentError(`cannot read the KPI script ${path}`, { cause: err });
  }
}

/**
 * The `kpi-calculator` agent: validates `{prices}` ({@link KpiInput}), runs the script with
 * {@link KPI_TIMEOUT_MS} / {@link KPI_MEMORY_BYTES} and returns {@link KpiOutput}.
 * Throws `ValidationError` for a malformed input and `AgentError` for domain errors
 * (e.g. `no prices in the requested window`, a non-positive price).
 */
export const kpiCalculator: NamedAgent = functionAgent(
  'kpi-calculator',
  'Per-symbol KPIs (total return, CAGR, volatility, max drawdown, best/worst month) of a price series.',
  loadKpiScript,
  { timeoutMs: KPI_TIMEOUT_MS, memoryBytes: KPI_MEMORY_BYTES },
  { parseInput: (input) => parseInput(KpiInput, input) },
);
