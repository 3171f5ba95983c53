-- Migration 0019 (issue 8): the hot path's statements for several steps at once. A worker sends
-- the reads and the completions of its concurrent jobs that come due while one such statement is
-- in flight as one statement (services/engine/hot-path.ts, `Batcher`): one round trip and, for the
-- completions, one durable commit for all of them.

-- baton_finish_step (0018) for each item of `p_items` (`[{run, step, generation, attempts, job,
-- input, output, event, candidates, notify, elapsedMs}]`), in one transaction. The runs are
-- locked in id order (items of one run in their given order), so that two batches never wait for
-- each other. Returns each finished item's index in `p_items` with baton_finish_step's row; an
-- item it refused (nothing written for it) has no row.
CREATE OR REPLACE FUNCTION baton_finish_steps(p_items jsonb)
RETURNS TABLE (idx integer, attempt integer, queued jsonb, needs_advance boolean, first_seq integer, last_seq integer, root_generation integer) AS $$
#variable_conflict use_column
DECLARE
  it record;
BEGIN
  FOR it IN
    SELECT e.value AS v, (e.ordinality - 1)::integer AS i
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e
     ORDER BY (e.value->>'run')::uuid, e.ordinality
  LOOP
    RETURN QUERY
      SELECT it.i, f.attempt, f.queued, f.needs_advance, f.first_seq, f.last_seq, f.root_generation
        FROM baton_finish_step(
          (it.v->>'run')::uuid, it.v->>'step', (it.v->>'generation')::integer, (it.v->>'attempts')::integer,
          it.v->>'job', nullif(it.v->'input', 'null'::jsonb), nullif(it.v->'output', 'null'::jsonb), it.v->'event',
          ARRAY(SELECT jsonb_array_elements_text(it.v->'candidates')), (it.v->>'notify')::boolean,
          (it.v->>'elapsedMs')::double precision) f;
  END LOOP;
END;
$$ LANGUAGE plpgsql;
