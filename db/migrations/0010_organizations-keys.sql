-- Organizations and keys (issue 12 item 1): when a key was last used (approximate, at most one
-- write a minute per key), and every API node told at COMMIT when a key is revoked, deleted or
-- changes identity, scopes or roles, so its in-process cache forgets it.
ALTER TABLE "api_keys" ADD COLUMN "last_used_at" timestamp with time zone;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION baton_notify_api_key_change() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('baton_api_keys', OLD.key_hash);
  ELSIF OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.scopes IS DISTINCT FROM NEW.scopes
     OR OLD.roles IS DISTINCT FROM NEW.roles OR OLD.subject IS DISTINCT FROM NEW.subject
     OR OLD.organization_id IS DISTINCT FROM NEW.organization_id OR OLD.key_hash IS DISTINCT FROM NEW.key_hash THEN
    PERFORM pg_notify('baton_api_keys', OLD.key_hash);
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION baton_notify_api_key_change();
