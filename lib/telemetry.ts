/**
 * OpenTelemetry tracing (`@opentelemetry/sdk-node`): spans are exported as OTLP/HTTP JSON when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and tracing is off
 * otherwise (the `@opentelemetry/api` no-op tracer: every helper here then costs almost nothing).
 *
 * One trace per run: `web`'s `POST /v1/runs` span (child of an incoming W3C `traceparent`) is
 * stored with the run as a W3C trace-context carrier ({@link currentTraceCarrier}); every step
 * attempt, in whichever worker runs it, is a span whose parent is that carrier; outgoing HTTP
 * carries `traceparent` ({@link withTraceHeaders}). Context propagation follows W3C Trace Context
 * (https://www.w3.org/TR/trace-context/); model calls follow the OpenTelemetry gen_ai semantic
 * conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/).
 *
 * The SDK itself also honours the standard `OTEL_*` variables it reads (e.g.
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`).
 */
import { hostname } from 'node:os';
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { Config } from './config.js';

/** Instrumentation scope of Baton's spans. */
const TRACER_NAME = 'baton';

/** A W3C trace-context carrier: `traceparent` and, when present, `tracestate`. */
export type TraceCarrier = Record<string, string>;

/** Started tracing of a process. */
export interface Telemetry {
  /** Whether spans are exported (an OTLP endpoint is configured). */
  enabled: boolean;
  /** Flush pending spans and stop exporting. */
  shutdown(): Promise<void>;
}

let enabled = false;

/** Whether this process exports spans (see {@link startTelemetry}). */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Start tracing for this process, once, before it serves anything (entry files only).
 * @param telemetry - `config.telemetry`; without `tracesUrl` nothing is started.
 * @param service - the process kind, giving the default `service.name` (`baton-<service>`).
 */
export function startTelemetry(telemetry: Config['telemetry'], service: 'web' | 'worker'): Telemetry {
  if (!telemetry.tracesUrl) return { enabled: false, shutdown: () => Promise.resolve() };
  const sdk = new NodeSDK({
    serviceName: telemetry.serviceName ?? `baton-${service}`,
    resource: resourceFromAttributes({ 'service.namespace': 'baton', 'service.instance.id': `${hostname()}:${process.pid}` }),
    // Batched per OTEL_BSP_* (default: every 5 s, and on shutdown).
    traceExporter: new OTLPTraceExporter({ url: telemetry.tracesUrl }),
    // Traces only: Baton's metrics are Prometheus (lib/metrics.ts), its logs pino.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  enabled = true;
  return {
    enabled: true,
    shutdown: async () => {
      await sdk.shutdown();
      enabled = false;
    },
  };
}

function tracer() {
  return trace.getTracer(TRACER_NAME);
}

/**
 * The active span's context as a W3C carrier, to store with a run; `undefined` when tracing is
 * off or no span is active.
 */
export function currentTraceCarrier(): TraceCarrier | undefined {
  if (!enabled || !trace.getActiveSpan()) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** The context a carrier (or incoming request headers) describes; the root context for none. */
export function contextFromCarrier(carrier: Readonly<Record<string, string | string[] | undefined>> | null | undefined): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/** `headers` plus the active context's `traceparent` (and `tracestate`); the same object when tracing is off. */
export function withTraceHeaders(headers: Record<string, string>): Record<string, string> {
  if (!enabled || !trace.getActiveSpan()) return headers;
  const out = { ...headers };
  propagation.inject(context.active(), out);
  return out;
}

/** `fn` bound to the context active now (for callbacks invoked from elsewhere, e.g. worker-thread messages). */
export function bindTraceContext<F extends (...args: never[]) => unknown>(fn: F): F {
  return enabled ? context.bind(context.active(), fn) : fn;
}

/** Options of {@link inSpan}. */
export interface SpanOptions {
  kind?: 'internal' | 'server' | 'client';
  attributes?: Attributes;
  /** Parent context (default: the active one). */
  parent?: Context;
}

/** The span `fn` gets while tracing is off (records nothing). */
const NOOP_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

const KINDS = { internal: SpanKind.INTERNAL, server: SpanKind.SERVER, client: SpanKind.CLIENT } as const;

/**
 * Run `fn` inside a new span (active while it runs). A thrown error is recorded on the span
 * (status ERROR) and rethrown; the span ends when `fn` settles.
 */
export async function inSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!enabled) return fn(NOOP_SPAN);
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: KINDS[options.kind ?? 'internal'], ...(options.attributes ? { attributes: options.attributes } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Mark `span` failed with `err` (exception event plus ERROR status). */
export function recordError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * Start a server span for an incoming request whose parent is the request's `traceparent`, if any.
 * @returns the span and the context to run the request's handlers in.
 */
export function startServerSpan(name: string, headers: Readonly<Record<string, string | string[] | undefined>>, attributes: Attributes): { span: Span; context: Context } {
  const parent = contextFromCarrier(headers);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Run `fn` in context `ctx` (from {@link startServerSpan}). */
export function runInContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** What a model call reports for the gen_ai semantic conventions. */
export interface GenAiResult {
  /** Model that answered (`gen_ai.response.model`). */
  model: string;
  /** `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`. */
  usage: { inputTokens: number; outputTokens: number };
}

/**
 * Run one chat completion inside a `chat <model>` client span with the gen_ai attributes
 * (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, and from the result
 * `gen_ai.response.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`).
 * @param provider - e.g. `openai` (an OpenAI-compatible endpoint) or `local`.
 */
export function inGenAiSpan<T extends GenAiResult>(provider: string, requestModel: string, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const attributes = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': provider, 'gen_ai.request.model': requestModel };
  return inSpan(`chat ${requestModel}`, { kind: 'client', attributes }, async (span) => {
    const result = await fn();
    span.setAttributes({
      'gen_ai.response.model': result.model,
      'gen_ai.usage.input_tokens': result.usage.inputTokens,
      'gen_ai.usage.output_tokens': result.usage.outputTokens,
    });
    return result;
  });
}
