ALTER TABLE "run_events" ADD COLUMN "delivered_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "run_events_undelivered" ON "run_events" USING btree ("created_at") WHERE "run_events"."notify" and "run_events"."delivered_at" is null;--> statement-breakpoint
-- Events written before the outbox existed count as delivered: never re-send history.
UPDATE "run_events" SET "delivered_at" = "created_at" WHERE "delivered_at" IS NULL;
