-- Migration 0021 (issue 8): run starts in batches. A `web` sends the starts of its concurrent
-- `POST /v1/runs` that come due while one such statement is in flight as one statement
-- (services/engine/start-run-sql.ts, `Batcher`): one round trip and one durable commit for all
-- of them, each answered only after that commit.

-- baton_start_run (0015) for each item of `p_items` (`[{id, org, definition, slug, version,
-- latest, input, sealed, agents, webhook, key, createdBy, parentRun, parentStep, trace, steps,
-- ready, fingerprint}]`), in one transaction, in (organization, idempotency key) order so that two
-- batches racing on keys wait for each other in one order. Returns each item's index in
-- `p_items` with baton_start_run's row.
CREATE OR REPLACE FUNCTION baton_start_runs(p_items jsonb)
RETURNS TABLE (idx integer, outcome text, run_id uuid, run_status text) AS $$
#variable_conflict use_column
DECLARE
  it record;
BEGIN
  FOR it IN
    SELECT e.value AS v, (e.ordinality - 1)::integer AS i
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e
     ORDER BY e.value->>'org', e.value->>'key' NULLS FIRST, e.ordinality
  LOOP
    RETURN QUERY
      SELECT it.i, s.outcome, s.run_id, s.run_status
        FROM baton_start_run(
          (it.v->>'id')::uuid, (it.v->>'org')::uuid, (it.v->>'definition')::uuid, it.v->>'slug',
          (it.v->>'version')::integer, (it.v->>'latest')::boolean, it.v->'input', it.v->>'sealed',
          ARRAY(SELECT jsonb_array_elements_text(it.v->'agents')), it.v->>'webhook', it.v->>'key',
          it.v->>'createdBy', (it.v->>'parentRun')::uuid, it.v->>'parentStep', nullif(it.v->'trace', 'null'::jsonb),
          it.v->'steps', ARRAY(SELECT jsonb_array_elements_text(it.v->'ready')), it.v->>'fingerprint') s;
  END LOOP;
END;
$$ LANGUAGE plpgsql;
