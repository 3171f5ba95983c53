-- Two more transitions as single round trips (issue 8, after 0006_hot-path.sql):
-- starting a run (`POST /v1/runs`) and claiming a step whose input is fixed by its definition.
-- services/engine/start-run-sql.ts and services/engine/hot-path.ts call them and say when each
-- applies; anything else takes the general path, as before.

-- Start a run: the run (`queued`), its steps (`p_steps`: `[{id, type, agent, status, needs}]`),
-- `run.queued` and the initially ready steps (`p_ready`, in definition order) `queued` with their
-- `step.queued`, in one statement.
-- The caller computed everything that needs the definition (the steps' rows, which are ready,
-- the sealed input); what can change between requests is decided here, under the same snapshot:
-- - an idempotency key already used by the organization: returns `existing` with that run (also
--   when two requests race on the key: the loser's insert does nothing and it reads the winner's);
-- - `p_latest` (the caller resolved "the latest version" from its cache): when a newer version of
--   the definition exists, returns `stale` and changes nothing (the caller looks it up again);
-- - `p_fingerprint` is stored as the run's `request_fingerprint` (0014; the caller compares it on a replay);
-- - the run pins the latest version of every agent named in `p_agents`.
-- Returns `created` with the new run otherwise. Durable commit (the run must survive a crash
-- once its id was answered).
CREATE OR REPLACE FUNCTION baton_start_run(
  p_id uuid, p_org uuid, p_definition uuid, p_slug text, p_version integer, p_latest boolean,
  p_input jsonb, p_sealed text, p_agents text[], p_webhook text, p_key text, p_created_by text,
  p_parent_run uuid, p_parent_step text, p_trace jsonb, p_steps jsonb, p_ready text[], p_fingerprint text
) RETURNS TABLE (outcome text, run_id uuid, run_status text) AS $$
#variable_conflict use_column
DECLARE
  v_agents jsonb;
  v_notify boolean := p_webhook IS NOT NULL;
  v_id uuid;
  v_status text;
  v_ready integer := coalesce(array_length(p_ready, 1), 0);
BEGIN
  IF p_key IS NOT NULL THEN
    SELECT id, status INTO v_id, v_status FROM runs WHERE organization_id = p_org AND idempotency_key = p_key;
    IF FOUND THEN RETURN QUERY SELECT 'existing'::text, v_id, v_status; RETURN; END IF;
  END IF;
  IF p_latest AND EXISTS (SELECT 1 FROM definitions
                           WHERE organization_id = p_org AND slug = p_slug AND version > p_version) THEN
    RETURN QUERY SELECT 'stale'::text, NULL::uuid, NULL::text;
    RETURN;
  END IF;
  SELECT coalesce(jsonb_object_agg(a.name, a.version), '{}'::jsonb) INTO v_agents
    FROM (SELECT name, max(version) AS version FROM agents
           WHERE organization_id = p_org AND name = ANY (p_agents) GROUP BY name) a;
  INSERT INTO runs (id, organization_id, definition_id, definition_slug, definition_version, status, input,
                    sealed_input, agent_versions, webhook_url, idempotency_key, created_by, parent_run_id,
                    parent_step_id, trace_context, event_seq, request_fingerprint)
  VALUES (p_id, p_org, p_definition, p_slug, p_version, 'queued', p_input, p_sealed, v_agents, p_webhook, p_key,
          p_created_by, p_parent_run, p_parent_step, p_trace, 1 + v_ready, p_fingerprint)
  ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
  IF NOT FOUND THEN
    SELECT id, status INTO v_id, v_status FROM runs WHERE organization_id = p_org AND idempotency_key = p_key;
    RETURN QUERY SELECT 'existing'::text, v_id, v_status;
    RETURN;
  END IF;
  INSERT INTO steps (run_id, step_id, type, agent, status, needs, queued_at)
  SELECT p_id, e->>'id', e->>'type', e->>'agent',
         CASE WHEN (e->>'id') = ANY (p_ready) THEN 'queued' ELSE e->>'status' END,
         ARRAY(SELECT jsonb_array_elements_text(e->'needs')),
         CASE WHEN (e->>'id') = ANY (p_ready) THEN now() END
    FROM jsonb_array_elements(p_steps) e;
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  VALUES (p_id, 1, 'run.queued', NULL, jsonb_build_object('definition', p_slug, 'version', p_version), v_notify);
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  SELECT p_id, 1 + r.ord, 'step.queued', r.id,
         jsonb_build_object('type', st.type, 'agent', st.agent, 'generation', 1), v_notify
    FROM unnest(p_ready) WITH ORDINALITY AS r(id, ord)
    JOIN steps st ON st.run_id = p_id AND st.step_id = r.id;
  RETURN QUERY SELECT 'created'::text, p_id, 'queued'::text;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint

-- Claim a queued step whose input is fixed by its definition (a `with:` without templates),
-- without reading anything first: the step job names its definition version, so the caller knows
-- the step and its input before any SQL. Like `baton_claim_step`: step running, attempt row,
-- `step.started` — and, for the run's first claim, the run `running` with `run.started`, as the
-- general path does. Committed asynchronously (the argument of `baton_claim_step`: a lost claim
-- leaves its job active in BullMQ, which delivers it again and it claims again, the run still
-- `queued` if it was; WAL is flushed in order, so the completion's durable commit makes the claim
-- durable first). Fenced in its `UPDATE … WHERE`: the run queued or running at definition
-- `p_definition` with no sealed input (nothing to redact from the stored input, so it can be
-- written before the run is read), the step queued at generation `p_generation` with no decided
-- input. Returns the attempt, the seqs of its events and what the attempt needs of its run, or no
-- row (and changes nothing) for the general path.
CREATE OR REPLACE FUNCTION baton_claim_step_fixed(
  p_run uuid, p_step text, p_generation integer, p_definition uuid, p_job text, p_input jsonb
) RETURNS TABLE (attempt integer, first_seq integer, last_seq integer, organization_id uuid, definition_slug text,
                 definition_version integer, agent_versions jsonb, webhook_url text) AS $$
#variable_conflict use_column
DECLARE
  v_run runs%ROWTYPE;
  v_attempt integer;
  v_seq integer;
  v_notify boolean;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT * INTO v_run FROM runs
   WHERE id = p_run AND status IN ('queued', 'running') AND definition_id = p_definition AND sealed_input IS NULL
     FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps
     SET status = 'running', attempts = attempts + 1, input = p_input, error = NULL,
         started_at = coalesce(started_at, now()), finished_at = NULL
   WHERE run_id = p_run AND step_id = p_step AND generation = p_generation
     AND status = 'queued' AND input_override IS NULL
  RETURNING attempts INTO v_attempt;
  IF NOT FOUND THEN RETURN; END IF;
  v_seq := v_run.event_seq;
  v_notify := v_run.webhook_url IS NOT NULL;
  IF v_run.status = 'queued' THEN
    v_seq := v_seq + 1;
    INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
    VALUES (p_run, v_seq, 'run.started', NULL, '{}'::jsonb, v_notify);
  END IF;
  INSERT INTO step_attempts (run_id, step_id, attempt, generation, status, job_id, input)
  VALUES (p_run, p_step, v_attempt, p_generation, 'running', p_job, p_input);
  v_seq := v_seq + 1;
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  VALUES (p_run, v_seq, 'step.started', p_step,
          jsonb_build_object('attempt', v_attempt, 'generation', p_generation), v_notify);
  UPDATE runs SET event_seq = v_seq, status = 'running',
                  started_at = CASE WHEN v_run.status = 'queued' THEN now() ELSE started_at END
   WHERE id = p_run;
  RETURN QUERY SELECT v_attempt, v_run.event_seq + 1, v_seq, v_run.organization_id, v_run.definition_slug,
                      v_run.definition_version, v_run.agent_versions, v_run.webhook_url;
END;
$$ LANGUAGE plpgsql;
