/** Output types of the `kpi-metrics@1` module (the `kpi-calculator` agent). */

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
