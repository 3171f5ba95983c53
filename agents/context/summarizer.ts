/**
 * `summarizer` (type `context`): a short summary of any text or JSON, or of per-symbol KPIs.
 *
 * Step input, one of:
 * - `{text, instructions?, maxWords?}` — prose;
 * - `{data, instructions?, maxWords?}` — any JSON value;
 * - `{kpis, from?, to?, instructions?}` — the `kpi-calculator` output (the KPI-tracking shape).
 *
 * Output `{text, model, provider, usage: {inputTokens, outputTokens}}`. With `ctx.llm.baseUrl`
 * set it asks the OpenAI-compatible endpoint (see `llm.ts`); without it a deterministic local
 * summary is written (`provider: "local"`): KPIs as one sentence per symbol plus the strongest
 * performer and deepest drawdown; text as its first sentences; JSON as a description of its
 * shape and leading values — each cut at `maxWords`.
 */
import { z } from 'zod';
import type { AgentContext, AgentImplementation } from '../types.js';
import { isCalendarDate, parseInput } from '../validation.js';
import { complete, estimatedUsage, extract, type LlmUsage } from './llm.js';
const isoDate = z.string().refine(isCalendarDate, { error: 'expected a date as YYYY-MM-DD' });
const finite = z.number({ error: 'expected number' }).refine(Number.isFinite, { error: 'expected a finite number' });
const month = z.object({ date: isoDate, returnPct: finite }).nullable();

/** KPIs of one symbol, as produced by `kpi-calculator`. */
export const SymbolKpisSchema = z.object({
  firstPrice: finite,
  lastPrice: finite,
  totalReturnPct: finite,
  cagrPct: finite.nullable(),
  maxDrawdownPct: finite,
  volatilityPct: finite.nullable(),
  bestMonth: month,
  worstMonth: month,
});

/** Step input: `{ kpis: {SYMBOL: kpis}, from?, to?, instructions? }`. */
export const SummarizerInput = z
  .object({
    kpis: z.record(z.string().min(1).max(64), SymbolKpisSchema),
    from: isoDate.optional(),
    to: isoDate.optional(),
    instructions: z.string().max(4000).optional(),
  })
  .refine((input) => input.from === undefined || input.to === undefined || input.from <= input.to, {
    error: 'expected from <= to',
    path: ['to'],
  });
export type SummarizerInput = z.infer<typeof SummarizerInput>;
type SymbolKpis = z.infer<typeof SymbolKpisSchema>;

/** The entry's `config:`. */
export const SummarizerConfig = z
  .object({
    /** Replaces the built-in system prompt of text and JSON summaries. */
    system: z.string().max(20_000).optional(),
    /** Model name; default `ctx.llm.model`. */
    model: z.string().min(1).max(200).optional(),
    /** Default length cap, in words (1..2000, default 120). */
    maxWords: z.number().int().min(1).max(2000).default(120),
  })
  .strict();
export type SummarizerConfig = z.infer<typeof SummarizerConfig>;

/** Step input of the generic shape: `{text | data, instructions?, maxWords?}`. */
export const SummarizerGenericInput = z
  .object({
    text: z.string().min(1).max(500_000).optional(),
    data: z.unknown().optional(),
    instructions: z.string().max(4000).optional(),
    maxWords: z.number().int().min(1).max(2000).optional(),
  })
  .strict()
  .refine((input) => (input.text === undefined) !== (input.data === undefined), {
    error: 'expected exactly one of text, data or kpis',
    path: ['text'],
  });
export type SummarizerGenericInput = z.infer<typeof SummarizerGenericInput>;

/** Step output. */
export interface SummarizerOutput {
  text: string;
  model: string;
  provider: string;
  usage: LlmUsage;
}

const KPI_SYSTEM_PROMPT = [
  'You are a financial analyst writing for a busy reader.',
  'You receive per-symbol KPIs computed from monthly prices: total return, CAGR, annualised volatility,',
  'maximum drawdown (all in percent) and the best and worst month.',
  'Write one short paragraph (at most 120 words) comparing the symbols over the window.',
  'Use only the numbers given, rounded to one decimal; do not give investment advice.',
].join(' ');

function genericSystemPrompt(maxWords: number): string {
  return [
    'You summarise the content you are given for a busy reader.',
    `Write at most ${maxWords} words of plain prose. Use only facts from the content; do not invent any.`,
  ].join(' ');
}

/** Parse either input shape (`kpis` present → the KPI shape). @throws {ValidationError}. */
function parseSummarizerInput(input: unknown): { kind: 'kpis'; value: SummarizerInput } | { kind: 'generic'; value: SummarizerGenericInput } {
  if (input !== null && typeof input === 'object' && 'kpis' in input) return { kind: 'kpis', value: parseInput(SummarizerInput, input) };
  return { kind: 'generic', value: parseInput(SummarizerGenericInput, input) };
}

/**
 * Summarise one input. Throws `ValidationError` (e.g. field `kpis.AAPL.firstPrice`, `text`), and
 * on the LLM path what `complete` throws (`RetryLaterError` for 429/5xx/timeouts, `AgentError`,
 * `CancelledError`).
 */
async function summarize(input: unknown, ctx: AgentContext, config: SummarizerConfig): Promise<SummarizerOutput> {
  const parsed = parseSummarizerInput(input);
  const model = config.model ?? ctx.llm.model;
  let system: string;
  let user: string;
  let local: string;
  if (parsed.kind === 'kpis') {
    const { value } = parsed;
    system = value.instructions ? `${KPI_SYSTEM_PROMPT}\nAdditional instructions: ${value.instructions}` : KPI_SYSTEM_PROMPT;
    user = JSON.stringify({ window: { from: value.from ?? null, to: value.to ?? null }, kpis: sortedKpis(value.kpis) });
    local = localSummary(value);
  } else {
    const { value } = parsed;
    const maxWords = value.maxWords ?? config.maxWords;
    const base = config.system ?? genericSystemPrompt(maxWords);
    system = value.instructions ? `${base}\nAdditional instructions: ${value.instructions}` : base;
    user = value.text ?? JSON.stringify(value.data, null, 1);
    local = value.text !== undefined ? extract(value.text, maxWords) : extract(describeJson(value.data), maxWords);
  }
  const messages = [
    { role: 'system' as const, content: system },
    { role: 'user' as const, content: user },
  ];
  if (!ctx.llm.baseUrl) {
    return { text: local, model: 'local', provider: 'local', usage: estimatedUsage(messages, local) };
  }
  const result = await complete({ messages, model, temperature: 0 }, ctx);
  return { text: result.text, model: result.model, provider: result.provider, usage: result.usage };
}

/** The `summarizer` implementation (default config: `{}`). */
export const summarizerImplementation: AgentImplementation<SummarizerConfig> = {
  name: 'summarizer',
  type: 'context',
  description: 'Summarises text, any JSON, or per-symbol KPIs (OpenAI-compatible LLM, or a deterministic local summary).',
  config: SummarizerConfig,
  run: summarize,
};

/**
 * A plain-language description of a JSON value for the local provider: its shape, then its
 * scalar fields (`key: value`) in key order, nested values by size.
 */
export function describeJson(value: unknown): string {
  const describe = (v: unknown): string => {
    if (v === null || v === undefined) return 'none';
    if (Array.isArray(v)) return `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
    if (typeof v === 'object') {
      const keys = Object.keys(v);
      return `a record with ${keys.length} field${keys.length === 1 ? '' : 's'}`;
    }
    return typeof v === 'string' ? v : (JSON.stringify(v) ?? typeof v);
  };
  if (Array.isArray(value)) {
    const first: unknown = value[0];
    const head = `A list of ${value.length} item${value.length === 1 ? '' : 's'}.`;
    return first === undefined ? head : `${head} The first: ${describeJson(first)}`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => a.localeCompare(b));
    const fields = entries.map(([key, v]) => `${key}: ${describe(v)}`).join('; ');
    return `A record with ${entries.length} field${entries.length === 1 ? '' : 's'}${entries.length > 0 ? ` (${fields}).` : '.'}`;
  }
  return describe(value);
}

/** KPIs with symbols in a stable (alphabetical) order. */
function sortedKpis(kpis: Record<string, SymbolKpis>): Record<string, SymbolKpis> {
  const sorted: Record<string, SymbolKpis> = {};
  for (const symbol of Object.keys(kpis).sort()) {
    const value = kpis[symbol];
    if (value) sorted[symbol] = value;
  }
  return sorted;
}

/**
 * Deterministic summary: one sentence per symbol (alphabetical), then the strongest performer and
 * the deepest drawdown when there are several symbols. Numbers: 1 decimal for percentages.
 */
export function localSummary(input: SummarizerInput): string {
  const entries = Object.entries(sortedKpis(input.kpis));
  const window =
    input.from && input.to
      ? `From ${input.from} to ${input.to}`
      : input.from
        ? `From ${input.from}`
        : input.to
          ? `Up to ${input.to}`
          : 'Over the period';
  if (entries.length === 0) return `${window}: no symbol had prices to summarise.`;

  const sentences = entries.map(([symbol, k]) => {
    const facts: string[] = [];
    if (k.cagrPct !== null) facts.push(`CAGR ${pct(k.cagrPct)} a year`);
    if (k.volatilityPct !== null) facts.push(`volatility ${pct(k.volatilityPct, false)}`);
    facts.push(`max drawdown ${pct(k.maxDrawdownPct, false)}`);
    const months: string[] = [];
    if (k.bestMonth) months.push(`best month ${k.bestMonth.date} ${pct(k.bestMonth.returnPct)}`);
    if (k.worstMonth) months.push(`worst month ${k.worstMonth.date} ${pct(k.worstMonth.returnPct)}`);
    const details = [facts.join(', '), ...(months.length > 0 ? [months.join(', ')] : [])].join('; ');
    return `${symbol} returned ${pct(k.totalReturnPct)} (${details}).`;
  });

  let text = `${window}: ${sentences.join(' ')}`;
  if (entries.length > 1) {
    const strongest = pick(entries, (k) => k.totalReturnPct);
    const deepest = pick(entries, (k) => k.maxDrawdownPct);
    const drawdown =
      deepest[1].maxDrawdownPct > 0
        ? `the deepest drawdown was ${deepest[0]}'s (${pct(deepest[1].maxDrawdownPct, false)})`
        : 'no symbol fell below an earlier high';
    text += ` The strongest performer was ${strongest[0]} (${pct(strongest[1].totalReturnPct)}); ${drawdown}.`;
  }
  return text;
}

/** The entry with the largest `value` (the alphabetically first on ties). */
function pick(entries: [string, SymbolKpis][], value: (k: SymbolKpis) => number): [string, SymbolKpis] {
  let best = entries[0];
  for (const entry of entries) if (best === undefined || value(entry[1]) > value(best[1])) best = entry;
  if (best === undefined) throw new Error('pick() needs at least one entry');
  return best;
}

/** `12.345` → `+12.3%` (or `12.3%` without sign); never `-0.0%`. */
function pct(value: number, signed = true): string {
  const rounded = Math.round(value * 10) / 10;
  const text = (Object.is(rounded, -0) ? 0 : rounded).toFixed(1);
  return `${signed && rounded > 0 ? '+' : ''}${text}%`;
}
