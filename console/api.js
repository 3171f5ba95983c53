// The console's only way to the server: the JSON API, same origin, with the session cookie and
// the session's CSRF token on every state-changing request.
let csrfToken = '';

/** Remember the CSRF token of the signed-in session. */
export function setCsrfToken(token) {
  csrfToken = token || '';
}

/** An API error: the server's `{error: {code, message, field}}` and the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.details = body && body.error && body.error.details;
  }
}

/** `fetch` a JSON route; resolves to the parsed body, rejects with an ApiError. */
export async function request(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}
