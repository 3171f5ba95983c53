/**
 * `llm` (type `context`): one chat completion.
 *
 * Step input `{prompt | messages, system?, model?, temperature?, schema?}` (the entry's `config`
 * may set defaults for `system`, `model`, `temperature`) → `{text, model, provider, usage}`, or
 * `{json, model, provider, usage}` when a `schema` (JSON Schema) is given.
 *
 * - **Remote** (`ctx.llm.baseUrl` set): `POST {baseUrl}/chat/completions` through `ctx.http`
 *   with `Authorization: Bearer <ctx.llm.apiKey>`; `provider: "openai-compatible"`. With a
 *   `schema` it requests structured output (`response_format: {type: 'json_schema', json_schema:
 *   {name, schema, strict: true}}`), parses the answer as JSON and validates it with ajv.
 * - **Local** (no `baseUrl`): a deterministic provider, `provider: "local"`, `model: "local"`:
 *   the text is an extract of the last user message (its first sentences, at most
 *   {@link LOCAL_MAX_WORDS} words); with a `schema` the value is built from the schema
 *   ({@link exampleForSchema}: `const`, `default`, `examples`, `enum`, `type` with
 *   `minimum`/`minLength`/`minItems`, `properties` (all of them), `items`, `anyOf`/`oneOf` (the
 *   first), `allOf` (objects merged), formats `date`, `date-time`, `email`, `uri`, `uuid`). It
 *   cannot satisfy `pattern`, `not`, `multipleOf`, `uniqueItems` with `minItems > 1`, or
 *   conditional schemas: the result is validated like a remote answer and then fails clearly.
 *   Usage is estimated as ⌈characters / 4⌉ per side.
 */
import { z } from 'zod';
import { AgentError, inGenAiSpan } from '../../lib/index.js';
import { httpStatusError } from '../http-errors.js';
import { compileSchema, describeSchemaErrors, type JsonSchema } from '../json-schema.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { parseInput } from '../validation.js';

/** Response bytes accepted from the LLM endpoint (1 MiB). */
export const MAX_LLM_RESPONSE_BYTES = 1024 * 1024;
/** Longest extract the local provider writes, in words. */
export const LOCAL_MAX_WORDS = 60;

/** One chat message. */
export const ChatMessage = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string({ error: 'expected a string' }).max(200_000),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

const temperature = z.number({ error: 'expected a number' }).min(0).max(2);

/** The entry's `config:` — defaults for every call. */
export const LlmConfig = z
  .object({
    system: z.string().max(20_000).optional(),
    /** Model name; default `ctx.llm.model`. */
    model: z.string().min(1).max(200).optional(),
    temperature: temperature.optional(),
    /** Cap on the answer's tokens (`max_tokens`). */
    maxTokens: z.number().int().positive().max(1_000_000).optional(),
  })
  .strict();
export type LlmConfig = z.infer<typeof LlmConfig>;

/** Step input. */
export const LlmInput = z
  .object({
    prompt: z.string().min(1).max(200_000).optional(),
    messages: z.array(ChatMessage).min(1).max(500).optional(),
    system: z.string().max(20_000).optional(),
    model: z.string().min(1).max(200).optional(),
    temperature: temperature.optional(),
    /** JSON Schema of the expected answer (an object schema for OpenAI's strict mode). */
    schema: z.record(z.string(), z.unknown()).optional(),
    /** Name of the schema in the request (`^[a-zA-Z0-9_-]{1,64}$`, default `output`). */
    schemaName: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/).optional(),
  })
  .strict()
  .refine((input) => (input.prompt === undefined) !== (input.messages === undefined), {
    error: 'expected exactly one of prompt or messages',
    path: ['prompt'],
  });
export type LlmInput = z.infer<typeof LlmInput>;

/** Token counts of one call. */
export interface LlmUsage {
  inputTokens: number;
  outputTokens: number;
}

/** What {@link complete} is asked. */
export interface CompletionRequest {
  messages: ChatMessage[];
  model: string;
  temperature: number;
  maxTokens?: number;
  /** With a schema the answer is structured output, parsed and validated. */
  schema?: JsonSchema;
  schemaName?: string;
}

/** What {@link complete} returns: `text` always (the raw answer), `json` with a schema. */
export interface CompletionResult {
  text: string;
  json?: unknown;
  model: string;
  provider: 'openai-compatible' | 'local';
  usage: LlmUsage;
}

/** The `llm` step output. */
export type LlmOutput =
  | { text: string; model: string; provider: string; usage: LlmUsage }
  | { json: unknown; model: string; provider: string; usage: LlmUsage };

const ChatCompletion = z.object({
  model: z.string().optional(),
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullable().optional(), refusal: z.string().nullable().optional() }),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: z
    .object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative() })
    .nullable()
    .optional(),
});

/**
 * One chat completion, remote or local (see the module notes).
 * @throws {RetryLaterError} on 429/5xx (`retryAfterMs` from `Retry-After`), timeouts and network
 *   errors (from `ctx.http`).
 * @throws {AgentError} on other non-2xx answers, a malformed completion, a refusal, an empty
 *   answer, or (with a schema) an answer that is not JSON or does not match the schema.
 * @throws {ValidationError} (field `schema`) when the schema does not compile.
 * @throws {CancelledError} when `ctx.signal` aborts.
 */
export async function complete(request: CompletionRequest, ctx: AgentContext): Promise<CompletionResult> {
  const validate = request.schema ? compileSchema(request.schema, 'schema') : undefined;
  // A gen_ai `chat <model>` span around the model call (lib/telemetry.ts).
  const result = ctx.llm.baseUrl
    ? await inGenAiSpan('openai', request.model, () => remoteCompletion(ctx.llm.baseUrl ?? '', request, ctx))
    : await inGenAiSpan('local', request.model, () => Promise.resolve(localCompletion(request)));
  if (!validate) return result;
  let json: unknown;
  try {
    json = JSON.parse(result.text) as unknown;
  } catch {
    throw new AgentError(`${result.provider} answer is not JSON although a schema was requested: ${excerpt(result.text)}`);
  }
  if (!validate(json)) {
    const { message } = describeSchemaErrors(validate.errors, 'json');
    throw new AgentError(`${result.provider} answer does not match the requested schema: ${message}`, {
      details: { provider: result.provider, model: result.model },
    });
  }
  return { ...result, json };
}

async function remoteCompletion(baseUrl: string, request: CompletionRequest, ctx: AgentContext): Promise<CompletionResult> {
  const url = `${baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const what = `LLM POST ${new URL(url).origin}${new URL(url).pathname}`;
  const body: Record<string, unknown> = {
    model: request.model,
    messages: request.messages,
    temperature: request.temperature,
    ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens }),
    ...(request.schema === undefined
      ? {}
      : {
          response_format: {
            type: 'json_schema',
            json_schema: { name: request.schemaName ?? 'output', schema: request.schema, strict: true },
          },
        }),
  };
  const started = Date.now();
  const response = await ctx.http({
    method: 'POST',
    url,
    headers: { Accept: 'application/json', ...(ctx.llm.apiKey ? { Authorization: `Bearer ${ctx.llm.apiKey}` } : {}) },
    body,
    timeoutMs: ctx.llm.timeoutMs,
    signal: ctx.signal,
    maxBodyBytes: MAX_LLM_RESPONSE_BYTES,
    maxRedirects: 0,
  });
  if (response.status < 200 || response.status > 299) {
    throw httpStatusError(what, response.status, response.headers['retry-after'], response.data);
  }
  const parsed = ChatCompletion.safeParse(asJson(response.data));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.map(String).join('.') || 'body'}: ${issue.message}` : 'unexpected shape';
    throw new AgentError(`LLM returned a malformed chat completion (${where})`, { details: { status: response.status } });
  }
  const choice = parsed.data.choices[0];
  if (choice?.message.refusal) throw new AgentError(`LLM refused: ${excerpt(choice.message.refusal)}`);
  const text = (choice?.message.content ?? '').trim();
  if (text === '') throw new AgentError('LLM returned an empty completion');
  const model = parsed.data.model ?? request.model;
  const usage = parsed.data.usage
    ? { inputTokens: parsed.data.usage.prompt_tokens, outputTokens: parsed.data.usage.completion_tokens }
    : { inputTokens: 0, outputTokens: 0 };
  ctx.logger.info({ agent: 'llm', model, durationMs: Date.now() - started, ...usage }, 'chat completion done');
  return { text, model, provider: 'openai-compatible', usage };
}

/** The deterministic local provider (see the module notes). */
export function localCompletion(request: CompletionRequest): CompletionResult {
  const lastUser = [...request.messages].reverse().find((m) => m.role === 'user') ?? request.messages.at(-1);
  const text = request.schema ? JSON.stringify(exampleForSchema(request.schema)) : extract(lastUser?.content ?? '', LOCAL_MAX_WORDS);
  return { text, model: 'local', provider: 'local', usage: estimatedUsage(request.messages, text) };
}

/** The local provider's token estimate: ⌈characters / 4⌉ of the messages and of the answer. */
export function estimatedUsage(messages: readonly ChatMessage[], answer: string): LlmUsage {
  const inputChars = messages.reduce((sum, m) => sum + m.content.length, 0);
  return { inputTokens: Math.ceil(inputChars / 4), outputTokens: Math.ceil(answer.length / 4) };
}

/**
 * The first sentences of `text` up to `maxWords` words (whitespace collapsed); a sentence cut
 * short ends with `…`.
 */
export function extract(text: string, maxWords: number): string {
  const words = text.replace(/\s+/g, ' ').trim().split(' ').filter((w) => w !== '');
  if (words.length <= maxWords) return words.join(' ');
  const cut = words.slice(0, maxWords).join(' ');
  const end = Math.max(cut.lastIndexOf('. '), cut.lastIndexOf('! '), cut.lastIndexOf('? '));
  return end > 0 ? cut.slice(0, end + 1) : `${cut}…`;
}

const FORMAT_EXAMPLES: Record<string, string> = {
  date: '2000-01-01',
  'date-time': '2000-01-01T00:00:00Z',
  time: '00:00:00Z',
  email: 'user@example.com',
  uri: 'https://example.com/',
  url: 'https://example.com/',
  uuid: '00000000-0000-4000-8000-000000000000',
};

/**
 * A deterministic value for simple JSON Schemas (see the module notes for what is supported).
 * @param schema - the JSON Schema (nested schemas that are not objects give `null`).
 * @param depth - recursion guard (at most 20 levels).
 */
export function exampleForSchema(schema: unknown, depth = 0): unknown {
  if (depth > 20 || schema === null || typeof schema !== 'object' || Array.isArray(schema)) return null;
  const s = schema as Record<string, unknown>;
  if ('const' in s) return s.const;
  if ('default' in s) return s.default;
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0] as unknown;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0] as unknown;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options) && options.length > 0) return exampleForSchema(options[0], depth + 1);
  }
  if (Array.isArray(s.allOf)) {
    const parts = s.allOf.map((part) => exampleForSchema(part, depth + 1));
    if (parts.every((part) => part !== null && typeof part === 'object' && !Array.isArray(part))) {
      return Object.assign({}, ...(parts as object[])) as unknown;
    }
    return parts[0] ?? null;
  }
  const types = Array.isArray(s.type) ? (s.type as unknown[]) : [s.type];
  const type = types.find((t) => t !== 'null') ?? types[0] ?? (s.properties ? 'object' : undefined);
  switch (type) {
    case 'object': {
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, exampleForSchema(value, depth + 1)]));
    }
    case 'array': {
      const count = typeof s.minItems === 'number' ? s.minItems : 0;
      return Array.from({ length: count }, () => exampleForSchema(s.items, depth + 1));
    }
    case 'string': {
      const format = typeof s.format === 'string' ? FORMAT_EXAMPLES[s.format] : undefined;
      if (format) return format;
      const min = typeof s.minLength === 'number' ? s.minLength : 0;
      const max = typeof s.maxLength === 'number' ? s.maxLength : Infinity;
      const base = 'local';
      return (base.length < min ? base.padEnd(min, 'x') : base).slice(0, Math.max(min, Math.min(base.length, max)));
    }
    case 'integer':
    case 'number': {
      if (typeof s.minimum === 'number') return type === 'integer' ? Math.ceil(s.minimum) : s.minimum;
      if (typeof s.exclusiveMinimum === 'number') return Math.floor(s.exclusiveMinimum) + 1;
      if (typeof s.maximum === 'number' && s.maximum < 0) return type === 'integer' ? Math.floor(s.maximum) : s.maximum;
      return 0;
    }
    case 'boolean':
      return false;
    default:
      return null;
  }
}

/** A JSON body sent with a non-JSON content type arrives as text: parse it if possible. */
export function asJson(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
}

function excerpt(text: string): string {
  const compact = text.replace(/\s+/g, ' ').trim();
  return compact.length > 200 ? `${compact.slice(0, 200)}…` : compact;
}

/** Messages of a step input: `system` (input, else config) first, then `prompt` or `messages`. */
function messagesOf(input: LlmInput, config: LlmConfig): ChatMessage[] {
  const system = input.system ?? config.system;
  const rest: ChatMessage[] = input.messages ?? [{ role: 'user', content: input.prompt ?? '' }];
  return system === undefined ? rest : [{ role: 'system', content: system }, ...rest];
}

/** The `llm` implementation. Throws like {@link complete}, and `ValidationError` for bad input. */
export const llmImplementation: AgentImplementation<LlmConfig> = {
  name: 'llm',
  type: 'context',
  description: 'One chat completion (OpenAI-compatible endpoint, or a deterministic local provider); optional structured output.',
  config: LlmConfig,
  async run(input: unknown, ctx: AgentContext, config: LlmConfig): Promise<LlmOutput> {
    const parsed = parseInput(LlmInput, input);
    const result = await complete(
      {
        messages: messagesOf(parsed, config),
        model: parsed.model ?? config.model ?? ctx.llm.model,
        temperature: parsed.temperature ?? config.temperature ?? 0,
        ...(config.maxTokens === undefined ? {} : { maxTokens: config.maxTokens }),
        ...(parsed.schema === undefined ? {} : { schema: parsed.schema }),
        ...(parsed.schemaName === undefined ? {} : { schemaName: parsed.schemaName }),
      },
      ctx,
    );
    const { model, provider, usage } = result;
    return parsed.schema === undefined ? { text: result.text, model, provider, usage } : { json: result.json, model, provider, usage };
  },
};
