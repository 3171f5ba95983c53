-- The W3C trace context ({traceparent, tracestate?}) of the request that started a run, so every
-- step attempt's span joins the run's one trace (lib/telemetry.ts). Null when tracing is off.
ALTER TABLE "runs" ADD COLUMN "trace_context" jsonb;
