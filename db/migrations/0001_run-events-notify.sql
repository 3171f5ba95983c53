-- Wake SSE streams when a run event commits. NOTIFY is delivered only at COMMIT, so a
-- listener can never see a poke before the row is visible, and no code path can forget it.
CREATE OR REPLACE FUNCTION baton_notify_run_event() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('baton_run_events', NEW.run_id::text || ':' || NEW.seq::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
  FOR EACH ROW EXECUTE FUNCTION baton_notify_run_event();
