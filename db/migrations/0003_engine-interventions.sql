CREATE TABLE "step_items" (
	"run_id" uuid NOT NULL,
	"step_id" text NOT NULL,
	"generation" integer NOT NULL,
	"idx" integer NOT NULL,
	"status" text NOT NULL,
	"item" jsonb,
	"input" jsonb,
	"output" jsonb,
	"error" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "step_items_run_id_step_id_generation_idx_pk" PRIMARY KEY("run_id","step_id","generation","idx")
);
--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "root_generation" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "parent_run_id" uuid;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "parent_step_id" text;--> statement-breakpoint
ALTER TABLE "step_attempts" ADD COLUMN "cache_key" text;--> statement-breakpoint
ALTER TABLE "step_attempts" ADD COLUMN "cache_hit" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "step_items" ADD CONSTRAINT "step_items_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "runs_parent" ON "runs" USING btree ("parent_run_id");--> statement-breakpoint
CREATE INDEX "step_attempts_cache" ON "step_attempts" USING btree ("cache_key","finished_at");