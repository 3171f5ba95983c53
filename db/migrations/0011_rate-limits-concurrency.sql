ALTER TABLE "api_keys" ADD COLUMN "rate_limit_runs_per_minute" integer;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "concurrency_key" text;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "concurrency_limit" integer;--> statement-breakpoint
CREATE INDEX "runs_concurrency_group" ON "runs" USING btree ("organization_id","definition_slug","concurrency_key","status","created_at") WHERE "runs"."concurrency_key" is not null;
