-- Migration 0020 (issue 8): the two indexes most rows leave out become partial, so a step's attempt
-- (no cache key) and a top-level run (no parent) write one index entry less.
DROP INDEX "runs_parent";--> statement-breakpoint
DROP INDEX "step_attempts_cache";--> statement-breakpoint
CREATE INDEX "runs_parent" ON "runs" USING btree ("parent_run_id") WHERE "runs"."parent_run_id" is not null;--> statement-breakpoint
CREATE INDEX "step_attempts_cache" ON "step_attempts" USING btree ("cache_key","finished_at") WHERE "step_attempts"."cache_key" is not null;
