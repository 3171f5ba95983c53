-- Migration 0018 (issue 8): the deferred claim. A plain step's agent starts as soon as its job
-- is read, and the claim waits STEP_CLAIM_DEFER_MS (workers/step-processor.ts): a step done by
-- then is claimed and completed in one transaction (baton_finish_step); a slower one is claimed
-- then (baton_claim_step_at) and completed as before. Either way the attempt's start is
-- recorded as when the agent started (`p_elapsed_ms` before the statement's `now()`), so the
-- history reads as if the claim had come first.
--
-- Both functions apply to a run `queued` or `running` (a queued run becomes running, with
-- `run.started`, as baton_claim_step_fixed does) and to a step `queued` at generation
-- `p_generation` with `p_attempts` attempts and no decided input: the state the worker read
-- before starting the agent. Anything else changes nothing and returns no row; the worker then
-- takes the general path (services/engine/steps.ts, beginStep), which decides the case.

-- The attempt's start, `p_elapsed_ms` ago: the step running, its attempt row, `step.started`
-- (and `run.started` first when the run was queued). Committed asynchronously, as
-- baton_claim_step (0006) and for the same reason: a lost claim leaves its job active in
-- BullMQ, so it is delivered again, and WAL is flushed in order, so the completion's durable
-- commit makes this claim durable first.
-- Returns the attempt and the seqs of its events.
CREATE OR REPLACE FUNCTION baton_claim_step_at(
  p_run uuid, p_step text, p_generation integer, p_attempts integer, p_job text, p_input jsonb,
  p_notify boolean, p_elapsed_ms double precision
) RETURNS TABLE (attempt integer, first_seq integer, last_seq integer) AS $$
#variable_conflict use_column
DECLARE
  v_status text;
  v_seq integer;
  v_first integer;
  v_attempt integer;
  v_started timestamptz := now() - make_interval(secs => greatest(p_elapsed_ms, 0) / 1000);
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT status, event_seq INTO v_status, v_seq FROM runs WHERE id = p_run AND status IN ('queued', 'running') FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps
     SET status = 'running', attempts = attempts + 1, input = p_input, error = NULL,
         started_at = coalesce(started_at, v_started), finished_at = NULL
   WHERE run_id = p_run AND step_id = p_step AND generation = p_generation
     AND status = 'queued' AND attempts = p_attempts AND input_override IS NULL
  RETURNING attempts INTO v_attempt;
  IF NOT FOUND THEN RETURN; END IF;
  v_first := v_seq + 1;
  IF v_status = 'queued' THEN
    v_seq := v_seq + 1;
    INSERT INTO run_events (run_id, seq, type, step_id, data, notify, created_at)
    VALUES (p_run, v_seq, 'run.started', NULL, '{}'::jsonb, p_notify, v_started);
  END IF;
  INSERT INTO step_attempts (run_id, step_id, attempt, generation, status, job_id, input, started_at)
  VALUES (p_run, p_step, v_attempt, p_generation, 'running', p_job, p_input, v_started);
  v_seq := v_seq + 1;
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify, created_at)
  VALUES (p_run, v_seq, 'step.started', p_step,
          jsonb_build_object('attempt', v_attempt, 'generation', p_generation), p_notify, v_started);
  UPDATE runs SET event_seq = v_seq, status = 'running',
                  started_at = CASE WHEN v_status = 'queued' THEN v_started ELSE started_at END
   WHERE id = p_run;
  RETURN QUERY SELECT v_attempt, v_first, v_seq;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint

-- A step whose agent finished before its claim was due, claimed and completed at once: what
-- baton_claim_step_at and then baton_complete_step (0016) would write, in one durable commit —
-- the step and its attempt completed (their start `p_elapsed_ms` ago), `step.started`,
-- `step.completed` (`p_event` with `durationMs`), and the successors queued by
-- baton_queue_ready. The job is acknowledged only after this commit, so a crash before it
-- leaves the job to be delivered again (at-least-once, as for every step).
-- Returns the attempt, what baton_complete_step returns, or no row (nothing changed).
CREATE OR REPLACE FUNCTION baton_finish_step(
  p_run uuid, p_step text, p_generation integer, p_attempts integer, p_job text, p_input jsonb,
  p_output jsonb, p_event jsonb, p_candidates text[], p_notify boolean, p_elapsed_ms double precision
) RETURNS TABLE (attempt integer, queued jsonb, needs_advance boolean, first_seq integer, last_seq integer, root_generation integer) AS $$
#variable_conflict use_column
DECLARE
  v_status text;
  v_root integer;
  v_seq integer;
  v_first integer;
  v_attempt integer;
  v_elapsed double precision := greatest(p_elapsed_ms, 0);
  v_started timestamptz := now() - make_interval(secs => greatest(p_elapsed_ms, 0) / 1000);
  v_queued jsonb;
  v_needs_advance boolean;
BEGIN
  SELECT status, event_seq, runs.root_generation INTO v_status, v_seq, v_root
    FROM runs WHERE id = p_run AND status IN ('queued', 'running') FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps
     SET status = 'completed', attempts = attempts + 1, input = p_input, output = p_output, error = NULL,
         started_at = coalesce(started_at, v_started), finished_at = now()
   WHERE run_id = p_run AND step_id = p_step AND generation = p_generation
     AND status = 'queued' AND attempts = p_attempts AND input_override IS NULL
  RETURNING attempts INTO v_attempt;
  IF NOT FOUND THEN RETURN; END IF;
  v_first := v_seq + 1;
  IF v_status = 'queued' THEN
    v_seq := v_seq + 1;
    INSERT INTO run_events (run_id, seq, type, step_id, data, notify, created_at)
    VALUES (p_run, v_seq, 'run.started', NULL, '{}'::jsonb, p_notify, v_started);
  END IF;
  INSERT INTO step_attempts (run_id, step_id, attempt, generation, status, job_id, input, output, started_at, finished_at)
  VALUES (p_run, p_step, v_attempt, p_generation, 'completed', p_job, p_input, p_output, v_started, now());
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify, created_at)
  VALUES (p_run, v_seq + 1, 'step.started', p_step,
          jsonb_build_object('attempt', v_attempt, 'generation', p_generation), p_notify, v_started),
         (p_run, v_seq + 2, 'step.completed', p_step,
          p_event || jsonb_build_object('attempt', v_attempt, 'durationMs', round(v_elapsed)::bigint), p_notify, now());
  v_seq := v_seq + 2;
  SELECT q.queued, q.needs_advance, q.last_seq INTO v_queued, v_needs_advance, v_seq
    FROM baton_queue_ready(p_run, p_candidates, v_seq, p_notify) q;
  UPDATE runs SET event_seq = v_seq, status = 'running',
                  started_at = CASE WHEN v_status = 'queued' THEN v_started ELSE started_at END
   WHERE id = p_run;
  RETURN QUERY SELECT v_attempt, v_queued, v_needs_advance, v_first, v_seq, v_root;
END;
$$ LANGUAGE plpgsql;
