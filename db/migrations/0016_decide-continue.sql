-- Migration 0016 (issue 8): the successors' queueing shared by the hot-path functions, and a
-- decision's hot path.

-- Queue the candidates that became ready (`p_candidates`: successors decided by their needs
-- alone, no `when:`): each one pending with every need completed becomes queued, with
-- `step.queued` at the next seq after `p_seq`. `needs_advance`: a candidate still pending has
-- all needs finished but not all completed (skipped, failed, cancelled), which only the general
-- `advance` decides. The caller holds the run's lock and writes `runs.event_seq = last_seq`.
-- Shared by baton_complete_step and baton_decide_continue.
CREATE OR REPLACE FUNCTION baton_queue_ready(p_run uuid, p_candidates text[], p_seq integer, p_notify boolean)
RETURNS TABLE (queued jsonb, needs_advance boolean, last_seq integer) AS $$
#variable_conflict use_column
DECLARE
  v_seq integer := p_seq;
  v_queued jsonb := '[]'::jsonb;
  v_needs_advance boolean;
  r record;
BEGIN
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
  RETURN QUERY SELECT v_queued, v_needs_advance, v_seq;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint

-- baton_complete_step (0006) again, its successors queued by baton_queue_ready: same arguments,
-- same answer.
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
  v_queued jsonb;
  v_needs_advance boolean;
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
  SELECT q.queued, q.needs_advance, q.last_seq INTO v_queued, v_needs_advance, v_seq
    FROM baton_queue_ready(p_run, p_candidates, v_seq, p_notify) q;
  UPDATE runs SET event_seq = v_seq WHERE id = p_run;
  RETURN QUERY SELECT v_queued, v_needs_advance, v_first, v_seq, v_root;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint

-- A `continue` that settles an approval, as one server-side function (issue 8: approval → next
-- step started ≤ 10 ms). The general path (services/engine/decisions.ts, under withRun) took 14
-- statements; this is one round trip that takes the run's row lock first, like every other
-- transition (run, then approval, then steps).
--
-- services/engine/hot-path.ts (`decideContinue`) calls it for the common case only — an API key or a link, one
-- approver required, the checkpoint waiting — and says what it passes. Whenever the case is not
-- that one (run not running, approval no longer pending or past its deadline, self-approval
-- refused, the approver already responded, the link already used, the step no longer waiting)
-- it changes nothing: it returns no row before its first write, or raises SQLSTATE BAT01 after
-- it (rolling every write back). The caller then takes the general path, which answers that
-- case with its own error.
--
-- Returns `decided_at` as ISO 8601 text (milliseconds, UTC: what the events carry).
--
-- Writes, in order: the link spent (when one is given), the response, the approval decided,
-- the checkpoint step and its attempt completed with `p_output` (its `decidedAt` filled in),
-- `checkpoint.resolved` (`p_resolved`, its `approval.decidedAt` filled in), `step.completed`,
-- then each candidate (`p_candidates`: successors decided by their needs alone) whose needs all
-- completed queued with `step.queued` — as baton_complete_step does.
CREATE OR REPLACE FUNCTION baton_decide_continue(
  p_run uuid, p_approval uuid, p_identity text, p_via text, p_comment text, p_data jsonb,
  p_client_ip text, p_user_agent text, p_token_jti text, p_token_approver text,
  p_resolved jsonb, p_output jsonb, p_candidates text[], p_notify boolean
) RETURNS TABLE (
  decided_at text, queued jsonb, needs_advance boolean, first_seq integer, last_seq integer, root_generation integer
) AS $$
#variable_conflict use_column
DECLARE
  v_seq integer;
  v_first integer;
  v_root integer;
  v_created_by text;
  v_step text;
  v_generation integer;
  v_self boolean;
  v_attempt integer;
  v_started timestamptz;
  v_at text := to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  v_queued jsonb;
  v_needs_advance boolean;
BEGIN
  SELECT event_seq, runs.root_generation, created_by INTO v_seq, v_root, v_created_by
    FROM runs WHERE id = p_run AND status = 'running' FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  SELECT step_id, generation, self_approval INTO v_step, v_generation, v_self
    FROM approvals
   WHERE id = p_approval AND run_id = p_run AND status = 'pending' AND now() < expires_at
     AND required = 1 AND 'continue' = ANY (decisions);
  IF NOT FOUND THEN RETURN; END IF;
  IF NOT v_self AND p_identity = v_created_by THEN RETURN; END IF;
  IF p_token_jti IS NOT NULL THEN
    UPDATE approval_tokens SET used_at = now()
     WHERE jti = p_token_jti AND approval_id = p_approval AND approver = p_token_approver AND used_at IS NULL;
    IF NOT FOUND THEN RETURN; END IF;
  END IF;
  INSERT INTO approval_responses (approval_id, approver, via, decision, comment, data, client_ip, user_agent, created_at)
  VALUES (p_approval, p_identity, p_via, 'continue', p_comment, p_data, p_client_ip, p_user_agent, clock_timestamp())
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN RAISE EXCEPTION 'baton: % already responded', p_identity USING ERRCODE = 'BAT01'; END IF;
  UPDATE approvals
     SET status = 'decided', decision = 'continue', comment = p_comment, decided_by = p_identity,
         decided_via = p_via, data = p_data, decided_at = now()
   WHERE id = p_approval;
  UPDATE steps SET status = 'completed', output = jsonb_set(p_output, '{decidedAt}', to_jsonb(v_at)),
                   error = NULL, finished_at = now()
   WHERE run_id = p_run AND step_id = v_step AND generation = v_generation AND status = 'waiting'
  RETURNING attempts, started_at INTO v_attempt, v_started;
  IF NOT FOUND THEN RAISE EXCEPTION 'baton: step % is not waiting', v_step USING ERRCODE = 'BAT01'; END IF;
  UPDATE step_attempts SET status = 'completed', output = jsonb_set(p_output, '{decidedAt}', to_jsonb(v_at)),
                           error = NULL, finished_at = now()
   WHERE run_id = p_run AND step_id = v_step AND attempt = v_attempt;
  v_first := v_seq + 1;
  INSERT INTO run_events (run_id, seq, type, step_id, data, notify)
  VALUES (p_run, v_seq + 1, 'checkpoint.resolved', v_step, jsonb_set(p_resolved, '{approval,decidedAt}', to_jsonb(v_at)), p_notify),
         (p_run, v_seq + 2, 'step.completed', v_step,
          jsonb_build_object('attempt', v_attempt, 'decision', 'continue')
            || CASE WHEN v_started IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('durationMs', round(extract(epoch FROM now() - v_started) * 1000)::bigint) END,
          p_notify);
  v_seq := v_seq + 2;
  SELECT q.queued, q.needs_advance, q.last_seq INTO v_queued, v_needs_advance, v_seq
    FROM baton_queue_ready(p_run, p_candidates, v_seq, p_notify) q;
  UPDATE runs SET event_seq = v_seq WHERE id = p_run;
  RETURN QUERY SELECT v_at, v_queued, v_needs_advance, v_first, v_seq, v_root;
END;
$$ LANGUAGE plpgsql;
