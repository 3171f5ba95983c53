// The Baton run console: sign-in, runs (filters, live status), a run (DAG, step timeline, event
// log, interventions), the approvals inbox, and the approval page a decideUrl opens.
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { ApiError, request, setCsrfToken } from './api.js';
import { Dag } from './dag.js';
import { JsonField, SchemaField, initialValue } from './schema-form.js';

const RUN_STATUSES = ['throttled', 'queued', 'running', 'cancelling', 'completed', 'failed', 'cancelled'];
const TERMINAL = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/** The hash route: `#/runs?status=…`, `#/runs/<id>`, `#/approvals`. */
function useRoute() {
  const read = () => {
    const [path, query = ''] = (location.hash.replace(/^#/, '') || '/runs').split('?');
    return { path, query: new URLSearchParams(query) };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
function duration(from, to) {
  if (!from) return '—';
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  return ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}
const Status = ({ status }) => html`<span class=${`badge status-${status}`}>${status}</span>`;
const ErrorBox = ({ error }) => (error ? html`<p class="error" role="alert">${error.message || String(error)}</p>` : null);

/** Any JSON value, readably: objects as key/value lists, arrays of objects as tables. */
export function Value({ value }) {
  if (value === null || value === undefined) return html`<span class="muted">—</span>`;
  if (typeof value === 'string') return value.length > 80 ? html`<p class="text">${value}</p>` : html`<span>${value}</span>`;
  if (typeof value !== 'object') return html`<code>${String(value)}</code>`;
  if (Array.isArray(value)) {
    if (value.length === 0) return html`<span class="muted">(empty)</span>`;
    if (value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      const cols = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return html`<table class="data"><thead><tr>${cols.map((c) => html`<th>${c}</th>`)}</tr></thead>
        <tbody>${value.map((row) => html`<tr>${cols.map((c) => html`<td><${Value} value=${row[c]} /></td>`)}</tr>`)}</tbody></table>`;
    }
    return html`<ul>${value.map((v) => html`<li><${Value} value=${v} /></li>`)}</ul>`;
  }
  return html`<dl class="kv">${Object.entries(value).map(([k, v]) => html`<dt>${k}</dt><dd><${Value} value=${v} /></dd>`)}</dl>`;
}

const Json = ({ value }) => html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;

function SignIn({ onSignedIn }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      onSignedIn(await request('POST', '/console/session', { apiKey: key }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<main class="narrow"><h1>Baton console</h1>
    <form onSubmit=${submit} class="card">
      <label class="field" for="api-key"><span>API key</span><input id="api-key" name="apiKey" type="password" autocomplete="off" value=${key} onInput=${(e) => setKey(e.target.value)} /></label>
      <button type="submit" class="primary">Sign in</button>
      <${ErrorBox} error=${error} />
      <p class="muted">The key is kept in an HttpOnly cookie for this browser only.</p>
    </form></main>`;
}

function RunsList({ query }) {
  const [data, setData] = useState({ items: [], nextCursor: null });
  const [error, setError] = useState(null);
  const status = query.get('status') || '';
  const definition = query.get('definition') || '';
  const load = useCallback(async () => {
    const q = new URLSearchParams({ limit: '50' });
    if (status) q.set('status', status);
    if (definition) q.set('definition', definition);
    try {
      setData(await request('GET', `/v1/runs?${q}`));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [status, definition]);
  useEffect(() => {
    void load();
    const stream = new EventSource('/console/stream');
    stream.addEventListener('run', (e) => {
      const run = JSON.parse(e.data);
      setData((d) => {
        const known = d.items.some((r) => r.id === run.id);
        if (!known) {
          void load();
          return d;
        }
        return { ...d, items: d.items.map((r) => (r.id === run.id ? { ...r, ...run } : r)) };
      });
    });
    return () => stream.close();
  }, [load]);
  const filter = (next) => {
    const q = new URLSearchParams({ ...(status ? { status } : {}), ...(definition ? { definition } : {}), ...next });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    location.hash = `#/runs?${q}`;
  };
  const visible = data.items.filter((r) => !status || status.split(',').includes(r.status));
  return html`<main><h1>Runs</h1>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); filter({ definition: e.target.definition.value.trim() }); }}>
      <label>Status <select name="status" onChange=${(e) => filter({ status: e.target.value })}>
        <option value="">any</option>${RUN_STATUSES.map((s) => html`<option selected=${s === status}>${s}</option>`)}
      </select></label>
      <label>Definition <input name="definition" value=${definition} placeholder="slug" /></label>
      <button type="submit">Filter</button>
    </form>
    <${ErrorBox} error=${error} />
    <table class="list"><thead><tr><th>Run</th><th>Definition</th><th>Status</th><th>Created</th><th>Duration</th></tr></thead>
      <tbody>${visible.map((r) => html`<tr data-run=${r.id}>
        <td><a href=${`#/runs/${r.id}`}>${r.id.slice(0, 8)}</a></td><td>${r.definition} v${r.version}</td>
        <td><${Status} status=${r.status} /></td><td>${when(r.createdAt)}</td><td>${duration(r.startedAt, r.finishedAt)}</td></tr>`)}
      </tbody></table>
    ${visible.length === 0 ? html`<p class="muted">No runs.</p>` : null}
  </main>`;
}

function StepDetail({ step, attempts, runId, onChanged }) {
  const [input, setInput] = useState(undefined);
  const [output, setOutput] = useState(undefined);
  const [message, setMessage] = useState(null);
  const act = async (path, body) => {
    setMessage(null);
    try {
      await request('POST', path, body);
      setMessage({ message: 'Done.' });
      onChanged();
    } catch (err) {
      setMessage(err);
    }
  };
  const last = attempts.at(-1);
  return html`<section class="card step-detail"><h3>Step ${step.id} <${Status} status=${step.status} /></h3>
    <p class="muted">${step.type}${step.agent ? ` · ${step.agent}` : ''} · generation ${step.generation} · ${step.attempts} attempt(s)</p>
    <ol class="timeline">${attempts.map((a) => html`<li class=${`status-${a.status}`}>
      <strong>Attempt ${a.attempt}</strong> <${Status} status=${a.status} /> ${when(a.startedAt)} · ${duration(a.startedAt, a.finishedAt)}${a.cacheHit ? ' · cache hit' : ''}
      <details><summary>input</summary><${Json} value=${a.input} /></details>
      ${a.output !== null && a.output !== undefined ? html`<details><summary>output</summary><${Json} value=${a.output} /></details>` : null}
      ${a.error ? html`<details open><summary>error</summary><${Json} value=${a.error} /></details>` : null}
    </li>`)}</ol>
    ${(step.assets || []).length > 0 ? html`<h4>Assets</h4><ul>${step.assets.map((a) => html`<li><a href=${`/v1/assets/${a.id}/content`}>${a.name || a.id}</a> ${a.contentType || ''}</li>`)}</ul>` : null}
    <h4>Intervene</h4>
    <div class="actions">
      <div><label class="field"><span>Retry with input (JSON, empty: same input)</span>
        <${JsonField} id="retry-input" name="retryInput" value=${input === undefined ? last?.input : input} onChange=${setInput} rows="4" /></label>
        <button onClick=${() => act(`/v1/runs/${runId}/steps/${step.id}/retry`, input === undefined ? {} : { input })}>Retry step</button></div>
      <div><label class="field"><span>Skip with output (JSON)</span><${JsonField} id="skip-output" name="skipOutput" value=${output} onChange=${setOutput} rows="4" /></label>
        <button onClick=${() => act(`/v1/runs/${runId}/steps/${step.id}/skip`, output === undefined ? {} : { output })}>Skip step</button></div>
    </div>
    <${ErrorBox} error=${message instanceof ApiError ? message : null} />
    ${message && !(message instanceof ApiError) ? html`<p class="ok">${message.message}</p>` : null}
  </section>`;
}

function RunPage({ id }) {
  const [view, setView] = useState(null);
  const [manifest, setManifest] = useState(null);
  const [events, setEvents] = useState([]);
  const [selected, setSelected] = useState(null);
  const [error, setError] = useState(null);
  // Bumped by an intervention: a finished run may reopen, so listen again.
  const [opening, setOpening] = useState(0);
  const load = useCallback(async () => {
    try {
      const [v, m] = await Promise.all([request('GET', `/v1/runs/${id}`), request('GET', `/v1/runs/${id}/manifest`)]);
      setView(v);
      setManifest(m);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [id]);
  const lastSeq = useRef(0);
  useEffect(() => {
    setEvents([]);
    lastSeq.current = 0;
  }, [id]);
  useEffect(() => {
    void load();
    let timer;
    // From the last event seen: a reopened run's stream must not stop at its earlier end.
    const stream = new EventSource(`/v1/runs/${id}/stream?after=${lastSeq.current}`);
    const onEvent = (e) => {
      const ev = JSON.parse(e.data);
      lastSeq.current = Math.max(lastSeq.current, ev.seq);
      setEvents((list) => (list.some((x) => x.seq === ev.seq) ? list : [...list, ev]));
      clearTimeout(timer);
      timer = setTimeout(() => void load(), 150);
      if (TERMINAL.has(ev.type)) stream.close();
    };
    stream.onmessage = onEvent;
    for (const t of ['run.throttled', 'run.queued', 'run.started', 'run.completed', 'run.failed', 'run.cancelled', 'run.resumed', 'run.cancelling', 'step.queued', 'step.started', 'step.progress', 'step.retrying', 'step.completed', 'step.failed', 'step.skipped', 'step.cancelled', 'checkpoint.requested', 'checkpoint.responded', 'checkpoint.reminded', 'checkpoint.resolved', 'checkpoint.expired']) {
      stream.addEventListener(t, onEvent);
    }
    return () => {
      clearTimeout(timer);
      stream.close();
    };
  }, [id, load, opening]);
  const changed = () => {
    setOpening((n) => n + 1);
    void load();
  };
  if (error && !view) return html`<main><${ErrorBox} error=${error} /></main>`;
  if (!view) return html`<main><p class="muted">Loading…</p></main>`;
  const step = view.steps.find((s) => s.id === selected);
  const attempts = manifest?.steps.find((s) => s.id === selected)?.attempts || [];
  const runAction = async (path, body) => {
    try {
      await request('POST', path, body);
      changed();
    } catch (err) {
      setError(err);
    }
  };
  const finished = ['completed', 'failed', 'cancelled'].includes(view.status);
  return html`<main>
    <h1>Run <code>${view.id.slice(0, 8)}</code> <span id="run-status"><${Status} status=${view.status} /></span></h1>
    <p class="muted">${view.definition} v${view.version} · created ${when(view.createdAt)} · ${duration(view.startedAt, view.finishedAt)}
      ${view.parent ? html` · child of <a href=${`#/runs/${view.parent.runId}`}>${view.parent.runId.slice(0, 8)}</a>` : null}</p>
    <div class="actions">
      ${!finished ? html`<button onClick=${() => runAction(`/v1/runs/${id}/cancel`, { reason: 'cancelled from the console' })}>Cancel run</button>` : null}
      ${view.status === 'failed' || view.status === 'cancelled' ? html`<button onClick=${() => runAction(`/v1/runs/${id}/resume`, {})}>Resume run</button>` : null}
    </div>
    <${ErrorBox} error=${error} />
    ${view.error ? html`<section class="card"><h3>Error</h3><${Json} value=${view.error} /></section>` : null}
    <section class="card"><h2>Graph</h2><${Dag} steps=${view.steps} selected=${selected} onSelect=${setSelected} />
      <p class="muted">Select a step for its attempts and interventions.</p></section>
    ${step ? html`<${StepDetail} key=${step.id} step=${step} attempts=${attempts} runId=${id} onChanged=${changed} />` : null}
    ${view.approvals.filter((a) => a.status === 'pending').map((a) => html`<section class="card"><h2>Waiting for approval: ${a.stepId}</h2><${Decide} approval=${a} onDecided=${changed} /></section>`)}
    <section class="card"><h2>Timeline</h2>
      <table class="list"><thead><tr><th>Step</th><th>Status</th><th>Attempts</th><th>Started</th><th>Duration</th></tr></thead>
      <tbody>${view.steps.map((s) => html`<tr onClick=${() => setSelected(s.id)} class="clickable"><td>${s.id}</td><td><${Status} status=${s.status} /></td><td>${s.attempts}</td><td>${when(s.startedAt)}</td><td>${duration(s.startedAt, s.finishedAt)}</td></tr>`)}</tbody></table></section>
    ${view.output ? html`<section class="card"><h2>Output</h2><${Value} value=${view.output} /></section>` : null}
    <section class="card"><h2>Events</h2>
      <ol class="events" id="event-log">${(events.length > 0 ? events : manifest?.events || []).map((e) => html`<li><code>${e.seq}</code> <strong>${e.type}</strong> ${e.stepId || ''} <span class="muted">${when(e.createdAt)}</span></li>`)}</ol></section>
  </main>`;
}

/**
 * Deciding an approval: the prompt, `show` rendered, a form from `modify`, one button per
 * decision. With `token`, it decides through the decideUrl; otherwise with the session's key.
 */
function Decide({ approval, token, onDecided }) {
  const [data, setData] = useState(() => initialValue(approval.modify, approval.show));
  const [comment, setComment] = useState('');
  const [outcome, setOutcome] = useState(null);
  const [busy, setBusy] = useState(false);
  const decide = async (decision) => {
    setBusy(true);
    setOutcome(null);
    const body = { decision, ...(comment ? { comment } : {}), ...(approval.modify && decision !== 'abort' && data !== undefined ? { input: data } : {}) };
    const path = `/v1/approvals/${approval.id}/decision${token ? `?token=${encodeURIComponent(token)}` : ''}`;
    try {
      const res = await request('POST', path, body);
      setOutcome({ ok: true, text: res.status === 'pending' ? `Recorded: ${res.continues} of ${res.required} approvals so far.` : `Decided: ${res.decision}.` });
      onDecided?.(res);
    } catch (err) {
      const text =
        err.status === 409 ? `Already decided or this link was already used: ${err.message}${err.details?.decision ? ` (decision: ${err.details.decision} by ${err.details.decidedBy})` : ''}.`
        : err.status === 410 ? `Too late: ${err.message}.`
        : err.message;
      setOutcome({ ok: false, text });
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="decide">
    <p class="prompt">${approval.prompt}</p>
    ${approval.show !== null && approval.show !== undefined ? html`<div class="show"><h3>Details</h3><${Value} value=${approval.show} /></div>` : null}
    <form onSubmit=${(e) => e.preventDefault()}>
      ${approval.modify ? html`<div class="modify"><h3>Changes</h3><${SchemaField} schema=${approval.modify} name="" path=${[]} value=${data} onChange=${setData} /></div>` : null}
      <label class="field" for="comment"><span>Comment</span><textarea id="comment" name="comment" rows="2" onInput=${(e) => setComment(e.target.value)}>${comment}</textarea></label>
      <div class="actions">${approval.decisions.map((d) => html`<button type="button" name="decision" value=${d} disabled=${busy || outcome?.ok} class=${d === 'continue' ? 'primary' : d === 'abort' ? 'danger' : ''} onClick=${() => decide(d)}>${d}</button>`)}</div>
    </form>
    ${outcome ? html`<p class=${outcome.ok ? 'ok' : 'error'} role="status" id="decision-outcome">${outcome.text}</p>` : null}
  </div>`;
}

function Approvals() {
  const [items, setItems] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    try {
      setItems((await request('GET', '/v1/approvals?status=pending&limit=100')).items);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void load();
    // Any run change may open or close an approval: reload, at most every half second.
    let timer;
    const stream = new EventSource('/console/stream');
    stream.addEventListener('run', () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        void load();
      }, 500);
    });
    return () => {
      clearTimeout(timer);
      stream.close();
    };
  }, [load]);
  return html`<main><h1>Approvals</h1><${ErrorBox} error=${error} />
    ${items === null ? html`<p class="muted">Loading…</p>` : items.length === 0 ? html`<p class="muted">Nothing waits for a decision.</p>` : null}
    ${(items || []).map((a) => html`<section class="card"><h2>${a.stepId} · <a href=${`#/runs/${a.runId}`}>run ${a.runId.slice(0, 8)}</a></h2>
      <p class="muted">waiting ${Math.round(a.ageMs / 60000)} min · deadline ${when(a.expiresAt)}</p>
      <${Decide} approval=${a} onDecided=${load} /></section>`)}
  </main>`;
}

/** The page of a decideUrl: `/v1/approvals/<id>/decision?token=…`, no sign-in needed. */
function ApprovalPage({ id, token }) {
  const [approval, setApproval] = useState(null);
  const [error, setError] = useState(null);
  const [decided, setDecided] = useState(false);
  useEffect(() => {
    request('GET', `/v1/approvals/${id}/decision?token=${encodeURIComponent(token)}`).then(setApproval, setError);
  }, [id, token]);
  if (error) {
    const text = error.status === 410 ? `This decision link has expired: ${error.message}.` : error.message;
    return html`<main class="narrow"><h1>Approval</h1><p class="error" role="alert">${text}</p></main>`;
  }
  if (!approval) return html`<main class="narrow"><p class="muted">Loading…</p></main>`;
  const closed = approval.status !== 'pending' || approval.linkUsed;
  return html`<main class="narrow"><h1>Approval: ${approval.stepId}</h1>
    <p class="muted">for ${String(approval.approver).startsWith('link:') ? 'whoever holds this link' : approval.approver} · deadline ${when(approval.expiresAt)} · <a href=${`/console#/runs/${approval.runId}`} id="run-link">run ${approval.runId.slice(0, 8)}</a></p>
    ${closed && !decided
      ? html`<p class="error" role="status">${approval.linkUsed ? 'This link was already used.' : `Already ${approval.status}`}${approval.decision ? ` Decision: ${approval.decision}${approval.decidedBy ? ` by ${approval.decidedBy}` : ''}.` : ''}</p>`
      : html`<section class="card"><${Decide} approval=${approval} token=${token} onDecided=${() => setDecided(true)} /></section>`}
  </main>`;
}

function Console() {
  const route = useRoute();
  const [session, setSession] = useState(undefined);
  useEffect(() => {
    request('GET', '/console/session').then(
      (s) => {
        setCsrfToken(s.csrfToken);
        setSession(s);
      },
      () => setSession(null),
    );
  }, []);
  if (session === undefined) return html`<p class="muted">Loading…</p>`;
  if (session === null) return html`<${SignIn} onSignedIn=${(s) => { setCsrfToken(s.csrfToken); setSession(s); }} />`;
  const signOut = async () => {
    await request('DELETE', '/console/session').catch(() => undefined);
    setSession(null);
  };
  const runMatch = /^\/runs\/([0-9a-f-]{36})$/.exec(route.path);
  return html`<div>
    <nav class="top"><strong>Baton</strong><a href="#/runs">Runs</a><a href="#/approvals">Approvals</a>
      <span class="spacer"></span><span class="muted">${session.subject}</span><button class="link" onClick=${signOut}>Sign out</button></nav>
    ${runMatch ? html`<${RunPage} id=${runMatch[1]} />` : route.path === '/approvals' ? html`<${Approvals} />` : html`<${RunsList} query=${route.query} />`}
  </div>`;
}

const decision = /^\/v1\/approvals\/([0-9a-f-]{36})\/decision$/.exec(location.pathname);
const root = document.getElementById('app');
root.textContent = '';
render(
  decision ? html`<${ApprovalPage} id=${decision[1]} token=${new URLSearchParams(location.search).get('token') || ''} />` : html`<${Console} />`,
  root,
);
