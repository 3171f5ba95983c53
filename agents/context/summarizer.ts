/**
 * `summarizer` (type `context`): a short prose summary of KPIs (the `kpi-calculator` output).
 *
 * With `ctx.llm.baseUrl` set it asks an OpenAI-compatible chat-completions endpoint; without it
 * it writes a deterministic local summary (same input → same text), so that demos and tests run
 * without an LLM.
 */
import { z } from 'zod';
import { AgentError } from '../../lib/index.js';
import { httpCall } from '../api/http-call.js';
import type { AgentContext, LlmSettings, NamedAgent } from '../types.js';
import { isCalendarDate, parseInput } from '../validation.js';

/** LLM response bytes accepted (1 MiB); a longer answer is treated as malformed. */
const MAX_LLM_RESPONSE_BYTES = 1024 * 1024;

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

/** Token counts reported by the LLM. */
export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** Step output. */
export type SummarizerOutput =
  | { text: string; provider: 'local' }
  | {
      text: string;
      provider: 'openai-compatible';
      model: string;
      /** `null` when the endpoint did not report usage. */
      usage: LlmUsage | null;
    };

const ChatCompletion = z.object({
  model: z.string().optional(),
  choices: z
    .array(z.object({ message: z.object({ content: z.string().min(1) }) }))
    .min(1),
  usage: z
    .object({
      prompt_tokens: z.number().int().nonnegative(),
      completion_tokens: z.number().int().nonnegative(),
      total_tokens: z.number().int().nonnegative(),
    })
    .optional()
    .nullable(),
});

const SYSTEM_PROMPT = [
  'You are a financial analyst writing for a busy reader.',
  'You receive per-symbol KPIs computed from monthly prices: total return, CAGR, annualised volatility,',
  'maximum drawdown (all in percent) and the best and worst month.',
  'Write one short paragraph (at most 120 words) comparing the symbols over the window.',
  'Use only the numbers given, rounded to one decimal; do not give investment advice.',
].join(' ');

/**
 * The `summarizer` agent.
 * Throws `ValidationError` (e.g. field `kpis.AAPL.firstPrice`), and on the LLM path
 * `RetryLaterError` (timeout, network, 429, 5xx; honours `Retry-After`), `AgentError` (other 4xx,
 * malformed response) or `CancelledError` (`ctx.signal`).
 */
export const summarizer: NamedAgent = {
  name: 'summarizer',
  type: 'context',
  description: 'Summarises per-symbol KPIs in prose (OpenAI-compatible LLM, or a local template).',
  async run(input: unknown, ctx: AgentContext): Promise<SummarizerOutput> {
    const parsed = parseInput(SummarizerInput, input);
    if (!ctx.llm.baseUrl) return { text: localSummary(parsed), provider: 'local' };
    return llmSummary(parsed, ctx.llm, ctx);
  },
};

/** Ask the OpenAI-compatible endpoint `POST {baseUrl}/chat/completions`. */
async function llmSummary(input: SummarizerInput, llm: LlmSettings, ctx: AgentContext): Promise<SummarizerOutput> {
  const baseUrl = (llm.baseUrl ?? '').replace(/\/+$/, '');
  const system = input.instructions ? `${SYSTEM_PROMPT}\nAdditional instructions: ${input.instructions}` : SYSTEM_PROMPT;
  const user = JSON.stringify({ window: { from: input.from ?? null, to: input.to ?? null }, kpis: sortedKpis(input.kpis) });
  const started = Date.now();
  const response = await httpCall({
    method: 'POST',
    url: `${baseUrl}/chat/completions`,
    headers: {
      Accept: 'application/json',
      ...(llm.apiKey ? { Authorization: `Bearer ${llm.apiKey}` } : {}),
    },
    body: {
      model: llm.model,
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: user },
      ],
      temperature: 0,
    },
    timeoutMs: llm.timeoutMs,
    signal: ctx.signal,
    maxBodyBytes: MAX_LLM_RESPONSE_BYTES,
  });
  const completion = ChatCompletion.safeParse(asJson(response.body));
  if (!completion.success) {
    const issue = completion.error.issues[0];
    const where = issue ? `${issue.path.map(String).join('.') || 'body'}: ${issue.message}` : 'unexpected shape';
    throw new AgentError(`LLM returned a malformed chat completion (${where})`, { details: { status: response.status } });
  }
  const { choices, model, usage } = completion.data;
  const text = choices[0]?.message.content.trim() ?? '';
  if (text === '') throw new AgentError('LLM returned an empty completion');
  ctx.logger.info(
    { agent: 'summarizer', model: model ?? llm.model, durationMs: Date.now() - started, totalTokens: usage?.total_tokens },
    'summary generated',
  );
  return {
    text,
    provider: 'openai-compatible',
    model: model ?? llm.model,
    usage: usage
      ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens }
      : null,
  };
}

/** A JSON body sent with a non-JSON content type arrives as text: parse it if possible. */
function asJson(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
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
