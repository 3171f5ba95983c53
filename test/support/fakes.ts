/**
 * Local fakes of the providers the agents call, as real `node:http` servers speaking the real
 * wire formats and recording every request:
 * - {@link startFakeOpenAI}: `POST /images/generations` (Images API, `b64_json`) and
 *   `POST /chat/completions` (a `chat.completion` with `usage`, honouring `response_format`
 *   json_schema);
 * - {@link startFakeGoogle}: `POST /models/<model>:predict` (Imagen, `x-goog-api-key`);
 * - {@link startFakeN8n}: an n8n-style webhook answering JSON.
 *
 * Images are real PNGs ({@link fakePng}): 2×2 RGB, colours derived from the prompt and index, so
 * every image differs and tests can compare downloaded bytes with {@link FakeServer.images}.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { deflateSync } from 'node:zlib';
import { exampleForSchema } from '../../agents/context/llm.js';
import { sendJson, startTestServer, type RecordedRequest } from '../../agents/test-http.js';

/** A scripted answer that replaces the normal one (consumed first-in, first-out). */
export interface ScriptedAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A started fake. */
export interface FakeServer {
  /** Base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  requests: RecordedRequest[];
  /** Answers to give before the normal ones (e.g. a 429 with `Retry-After`). */
  script: ScriptedAnswer[];
  /** Every image sent, in order (decoded bytes). */
  images: Buffer[];
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// PNG
// ---------------------------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO-HDLC) as PNG chunks use it. */
export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/** The PNG signature. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A valid 2×2 RGB PNG whose four pixel colours are the first 12 bytes of
 * SHA-256(`seed`): deterministic and distinct per seed.
 */
export function fakePng(seed: string): Buffer {
  const colours = createHash('sha256').update(seed).digest();
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0); // width
  ihdr.writeUInt32BE(2, 4); // height
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  // compression 0, filter 0, interlace 0
  const rows = Buffer.concat([Buffer.from([0]), colours.subarray(0, 6), Buffer.from([0]), colours.subarray(6, 12)]);
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Start a fake on `handler`, answering scripted answers first. */
async function startFake(handler: (request: RecordedRequest, response: ServerResponse, fake: FakeServer) => void): Promise<FakeServer> {
  const script: ScriptedAnswer[] = [];
  const images: Buffer[] = [];
  const holder: { fake?: FakeServer } = {};
  const server = await startTestServer((request, response) => {
    const scripted = script.shift();
    if (scripted) {
      sendJson(response, scripted.status, scripted.body ?? {}, scripted.headers ?? {});
      return;
    }
    if (holder.fake) handler(request, response, holder.fake);
  });
  const fake: FakeServer = { url: server.baseUrl, requests: server.requests, script, images, close: () => server.close() };
  holder.fake = fake;
  return fake;
}

/** A custom chat answer; `undefined` keeps the default (an echo, or a schema example). */
export type ChatAnswer = (body: { model?: string; messages?: { role: string; content: string }[]; response_format?: unknown }) => string | undefined;

/**
 * A fake OpenAI API. Requires `Authorization: Bearer <apiKey>` (else 401 with an OpenAI error
 * body).
 * - `POST /images/generations` `{model, prompt, n, size, response_format}` → `{created, data:
 *   [{b64_json}]}` with `n` PNGs seeded `openai:<prompt>:<index>`;
 * - `POST /chat/completions` → a `chat.completion`; with `response_format.type: json_schema`
 *   the content is {@link exampleForSchema} of the schema, otherwise an echo of the last user
 *   message, unless `options.chat` answers.
 */
export async function startFakeOpenAI(options: { apiKey: string; chat?: ChatAnswer }): Promise<FakeServer> {
  return startFake((request, response, fake) => {
    if (request.headers.authorization !== `Bearer ${options.apiKey}`) {
      sendJson(response, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } });
      return;
    }
    const body = (parseJson(request.body) ?? {}) as Record<string, unknown>;
    if (request.method === 'POST' && request.url === '/images/generations') {
      const prompt = typeof body.prompt === 'string' ? body.prompt : '';
      const n = typeof body.n === 'number' ? body.n : 1;
      if (prompt === '') {
        sendJson(response, 400, { error: { message: 'prompt is required', type: 'invalid_request_error' } });
        return;
      }
      const pngs = Array.from({ length: n }, (_, i) => fakePng(`openai:${prompt}:${i}`));
      fake.images.push(...pngs);
      sendJson(response, 200, { created: 1_700_000_000, data: pngs.map((png) => ({ b64_json: png.toString('base64') })) });
      return;
    }
    if (request.method === 'POST' && request.url === '/chat/completions') {
      const chat = body as Parameters<ChatAnswer>[0];
      const format = chat.response_format as { type?: string; json_schema?: { schema?: unknown } } | undefined;
      const lastUser = [...(chat.messages ?? [])].reverse().find((m) => m.role === 'user')?.content ?? '';
      const content =
        options.chat?.(chat) ??
        (format?.type === 'json_schema'
          ? JSON.stringify(exampleForSchema(format.json_schema?.schema))
          : `Echo: ${lastUser}`);
      const promptTokens = JSON.stringify(chat.messages ?? []).length;
      sendJson(response, 200, {
        id: `chatcmpl-${fake.requests.length}`,
        object: 'chat.completion',
        created: 1_700_000_000,
        model: chat.model ?? 'fake-model',
        choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, finish_reason: 'stop' }],
        usage: { prompt_tokens: promptTokens, completion_tokens: content.length, total_tokens: promptTokens + content.length },
      });
      return;
    }
    sendJson(response, 404, { error: { message: `Unknown request URL: ${request.method} ${request.url}` } });
  });
}

/**
 * A fake Google Generative Language API: `POST /models/<model>:predict` with header
 * `x-goog-api-key: <apiKey>` (else 403 with a Google error body), body `{instances: [{prompt}],
 * parameters: {sampleCount}}` → `{predictions: [{bytesBase64Encoded, mimeType: 'image/png'}]}`
 * with `sampleCount` PNGs per instance seeded `google:<model>:<prompt>:<index>`.
 */
export async function startFakeGoogle(options: { apiKey: string }): Promise<FakeServer> {
  return startFake((request, response, fake) => {
    const match = /^\/models\/([^/:]+):predict$/.exec(request.url);
    if (request.method !== 'POST' || !match) {
      sendJson(response, 404, { error: { code: 404, message: 'Not found', status: 'NOT_FOUND' } });
      return;
    }
    if (request.headers['x-goog-api-key'] !== options.apiKey) {
      sendJson(response, 403, { error: { code: 403, message: 'API key not valid. Please pass a valid API key.', status: 'PERMISSION_DENIED' } });
      return;
    }
    const model = decodeURIComponent(match[1] ?? '');
    const body = (parseJson(request.body) ?? {}) as { instances?: { prompt?: string }[]; parameters?: { sampleCount?: number } };
    const count = body.parameters?.sampleCount ?? 1;
    const predictions = (body.instances ?? []).flatMap((instance) =>
      Array.from({ length: count }, (_, i) => fakePng(`google:${model}:${instance.prompt ?? ''}:${i}`)),
    );
    fake.images.push(...predictions);
    sendJson(response, 200, { predictions: predictions.map((png) => ({ bytesBase64Encoded: png.toString('base64'), mimeType: 'image/png' })) });
  });
}

/**
 * A fake n8n webhook: every `POST` answers 200 with `answer(body)` (default `{ok: true,
 * received: <body>, executionId}`); the `Idempotency-Key` header is in `requests[i].headers`.
 */
export async function startFakeN8n(options: { answer?: (body: unknown) => unknown } = {}): Promise<FakeServer> {
  return startFake((request, response, fake) => {
    if (request.method !== 'POST') {
      sendJson(response, 404, { code: 404, message: `This webhook is not registered for ${request.method} requests` });
      return;
    }
    const body = parseJson(request.body);
    sendJson(response, 200, options.answer ? options.answer(body) : { ok: true, received: body, executionId: String(fake.requests.length) });
  });
}
