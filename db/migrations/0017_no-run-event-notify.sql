-- No NOTIFY per run event any more (issue 8). Postgres serialises every committing transaction
-- that has notifications under one lock held through its WAL flush (async.c, PreCommit_Notify),
-- so the trigger of migration 0001 held the whole hot path to one fsync at a time. Processes
-- announce committed events on Redis after the commit instead (queues/queues.ts,
-- `announceRunEvents`; services/api/event-hub.ts listens).
DROP TRIGGER IF EXISTS run_events_notify ON run_events;
--> statement-breakpoint
DROP FUNCTION IF EXISTS baton_notify_run_event();
