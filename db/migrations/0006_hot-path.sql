-- The hot path of a step, as two server-side functions (issue 8): like BullMQ's Lua scripts,
-- each transition is one round trip that takes the run's row lock first (the lock order of
-- every other transition: run, then steps) and does all its writes under it.
-- services/engine/hot-path.ts calls them and says when each applies; anything else takes the
-- general path (withRun).

-- Claim a queued step for a new attempt: step running, attempt row, `step.started`.
-- Returns the attempt number and the event's seq, or no row (and changes nothing) when the run
-- is not running or the step is no longer queued at generation p_generation with p_attempts
-- attempts (fenced).
--
-- Committed asynchronously (synchronous_commit off for this transaction only): losing this
-- commit in a Postgres crash is safe. Its job is still active in BullMQ, so it is re-delivered
-- and claims again; and WAL is flushed in order, so any later durable commit (the step's
-- completion) makes this claim durable first.
CREATE OR REPLACE FUNCTION baton_claim_step(
  p_run uuid, p_step text, p_generation integer, p_attempts integer, p_job text, p_input jsonb, p_notify boolean
) RETURNS TABLE (attempt integer, seq integer) AS $$
#variable_conflict use_column
DECLARE
  v_seq integer;
  v_attempt integer;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT event_seq INTO v_seq FROM runs WHERE id = p_run AND status = 'running' FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps
     SET status = 'running', attempts = attempts + 1, input = p_input, error = NULL,
         started_at = coalesce(started_at, now()), finished_at = NULL
   WHERE run_id = p_run AND step_id = p_step AND generation = p_generation
     AND status = 'queued' AND attempts = p_attempts
  RETURNING attempts INTO v_attempt;
  IF NOT FOUND THEN RETURN; END IF;
  INSERT INTO step_attempts (run_id, step_id, attempt, generation, status, job_id, input)
  VALUES (p_run, p_step, v_attempt, p_generation, 'running', p_job, p_input);
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  VALUES (p_run, v_seq + 1, 'step.started', p_step,
          jsonb_build_object('attempt', v_attempt, 'generation', p_generation), p_notify);
  UPDATE runs SET event_seq = v_seq + 1 WHERE id = p_run;
  RETURN QUERY SELECT v_attempt, v_seq + 1;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint

-- Record a running attempt's output and queue the successors it made ready: step and attempt
-- completed, `step.completed`, then every candidate (`p_candidates`: successors whose readiness
-- is decided by their needs alone — no `when:`) that is pending with all of its needs completed
-- becomes queued, with `step.queued`. A candidate whose needs are all finished but not all
-- completed (skipped, failed, cancelled) is left for the general `advance`: `needs_advance`.
-- Returns no row (and changes nothing) when the run is not running or the attempt is fenced out.
CREATE OR REPLACE FUNCTION baton_complete_step(
  p_run uuid, p_step text, p_generation integer, p_attempt integer, p_output jsonb,
  p_event jsonb, p_candidates text[], p_notify boolean
) RETURNS TABLE (queued jsonb, needs_advance boolean, first_seq integer, last_seq integer, root_generation integer) AS $$
#variable_conflict use_column
DECLARE
  v_seq integer;
  v_first integer;
  v_root integer;
  v_started timestamptz;
  v_queued jsonb := '[]'::jsonb;
  v_needs_advance boolean := false;
  r record;
BEGIN
  SELECT event_seq, runs.root_generation INTO v_seq, v_root FROM runs WHERE id = p_run AND status = 'running' FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps SET status = 'completed', output = p_output, error = NULL, finished_at = now()
   WHERE run_id = p_run AND step_id = p_step AND generation = p_generation
     AND attempts = p_attempt AND status = 'running'
  RETURNING started_at INTO v_started;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE step_attempts SET status = 'completed', output = p_output, error = NULL, finished_at = now()
   WHERE run_id = p_run AND step_id = p_step AND attempt = p_attempt;
  v_first := v_seq + 1;
  v_seq := v_seq + 1;
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  VALUES (p_run, v_seq, 'step.completed', p_step,
          p_event || jsonb_build_object('durationMs', round(extract(epoch from now() - v_started) * 1000)::bigint), p_notify);
  FOR r IN
    UPDATE steps c SET status = 'queued', queued_at = now()
     WHERE c.run_id = p_run AND c.step_id = ANY (p_candidates) AND c.status = 'pending'
       AND NOT EXISTS (SELECT 1 FROM steps n WHERE n.run_id = p_run AND n.step_id = ANY (c.needs) AND n.status <> 'completed')
    RETURNING c.step_id, c.type, c.agent, c.generation
  LOOP
    v_seq := v_seq + 1;
    INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
    VALUES (p_run, v_seq, 'step.queued', r.step_id,
            jsonb_build_object('type', r.type, 'agent', r.agent, 'generation', r.generation), p_notify);
    v_queued := v_queued || jsonb_build_object('stepId', r.step_id, 'generation', r.generation);
  END LOOP;
  SELECT EXISTS (
    SELECT 1 FROM steps c
     WHERE c.run_id = p_run AND c.step_id = ANY (p_candidates) AND c.status = 'pending'
       AND NOT EXISTS (SELECT 1 FROM steps n WHERE n.run_id = p_run AND n.step_id = ANY (c.needs)
                         AND n.status NOT IN ('completed', 'failed', 'skipped', 'cancelled'))
  ) INTO v_needs_advance;
  UPDATE runs SET event_seq = v_seq WHERE id = p_run;
  RETURN QUERY SELECT v_queued, v_needs_advance, v_first, v_seq, v_root;
END;
$$ LANGUAGE plpgsql;
