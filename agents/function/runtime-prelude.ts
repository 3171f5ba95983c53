/**
 * The isolate prelude of the function runtime: JavaScript evaluated in every fresh QuickJS
 * context before the user's code. It defines the globals `Buffer`, `URL`, `URLSearchParams` and
 * `console`, and returns the helpers the thread uses to call `main(input, ctx)`.
 *
 * It reaches the host only through the global `__baton` (installed by `runtime-thread.ts`, then
 * captured and deleted here), whose functions are:
 * - sync: `encode(string, encoding) → ArrayBuffer`, `decode(ArrayBuffer, encoding) → string`,
 *   `digest(algorithm, ArrayBuffer, hmacKey?: ArrayBuffer) → ArrayBuffer`, `randomBytes(n)`,
 *   `randomUUID()`, `urlParse(input, base?) → JSON | null`, `urlSet(href, part, value) → JSON`,
 *   `qsParse(string) → JSON pairs`, `qsSerialize(JSON pairs) → string`, `secret(name)`,
 *   `log(level, line)`, `source(section) → string`;
 * - async: `call(op, payloadJson, bytes?: ArrayBuffer) → Promise<{ok, json, bytes?}>`, answered by
 *   the main thread (`http`, `saveBuffer`, `deliverable`, `progress`).
 *
 * Encodings, hashing, WHATWG URL parsing and form encoding are done by Node in the thread (bytes
 * cross as ArrayBuffers), so they behave exactly like Node's; the rest is plain JS here.
 *
 * Only the core ({@link ISOLATE_PRELUDE}) is parsed for every call; `Buffer`, `crypto`, `url` and
 * `axios` are {@link ISOLATE_SECTIONS} that the isolate fetches (`__baton.source(name)`) and
 * evaluates on first use — parsing everything up front was most of a trivial call's cost.
 * The text must not contain backticks or `${` (other than the one interpolation): it is a TypeScript
 * template literal.
 */
import { RESULT_HELPERS_JS } from './quickjs-support.js';

/** Lazily evaluated parts of the prelude; each evaluates to `(lib) => exports`. */
export const ISOLATE_SECTIONS: Readonly<Record<string, string>> = {
  buffer: String.raw`(function (lib) {
'use strict';
const { host, hasOwn, bytesOf } = lib;
// ---- Buffer --------------------------------------------------------------------------------
const ENCODINGS = { utf8: 'utf8', 'utf-8': 'utf8', hex: 'hex', base64: 'base64', base64url: 'base64url',
  latin1: 'latin1', binary: 'latin1', ascii: 'ascii', ucs2: 'utf16le', 'ucs-2': 'utf16le',
  utf16le: 'utf16le', 'utf-16le': 'utf16le' };
function encodingOf(e) {
  if (e === undefined || e === null) return 'utf8';
  const name = ENCODINGS[String(e).toLowerCase()];
  if (!name) throw new TypeError('Unknown encoding: ' + e);
  return name;
}
function clamp(n, lo, hi, dflt) {
  if (n === undefined) return dflt;
  n = Math.trunc(Number(n)) || 0;
  if (n < 0) n += hi;
  return Math.min(Math.max(n, lo), hi);
}
class Buffer extends Uint8Array {
  static from(value, encodingOrOffset, length) {
    if (typeof value === 'string') return new Buffer(host.encode(value, encodingOf(encodingOrOffset)));
    if (value instanceof ArrayBuffer) {
      const offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset);
      return new Buffer(value, offset, length === undefined ? value.byteLength - offset : Number(length));
    }
    if (ArrayBuffer.isView(value)) {
      const out = new Buffer(value.byteLength);
      out.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      return out;
    }
    if (value !== null && typeof value === 'object') {
      if (value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
      if (typeof value.length === 'number') {
        const out = new Buffer(value.length);
        for (let i = 0; i < value.length; i++) out[i] = Number(value[i]) & 255;
        return out;
      }
    }
    throw new TypeError('Buffer.from: expected a string, Buffer, ArrayBuffer, Uint8Array or array');
  }
  static alloc(size, fill) {
    const out = new Buffer(size);
    if (typeof fill === 'number') out.fill(fill);
    else if (fill !== undefined) {
      const pattern = Buffer.from(fill);
      if (pattern.length) for (let i = 0; i < size; i++) out[i] = pattern[i % pattern.length];
    }
    return out;
  }
  static allocUnsafe(size) { return new Buffer(size); }
  static isBuffer(value) { return value instanceof Buffer; }
  static isEncoding(e) { return typeof e === 'string' && hasOwn(ENCODINGS, e.toLowerCase()); }
  static byteLength(value, encoding) {
    if (typeof value === 'string') return host.encode(value, encodingOf(encoding)).byteLength;
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value.byteLength;
    throw new TypeError('Buffer.byteLength: expected a string, Buffer or ArrayBuffer');
  }
  static concat(list, totalLength) {
    if (!Array.isArray(list)) throw new TypeError('Buffer.concat: expected an array');
    const total = totalLength === undefined ? list.reduce((n, b) => n + b.length, 0) : totalLength;
    const out = new Buffer(total);
    let at = 0;
    for (const b of list) {
      if (at >= total) break;
      const part = b.length > total - at ? new Uint8Array(b.buffer, b.byteOffset, total - at) : b;
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  static compare(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
  }
  toString(encoding, start, end) {
    const s = clamp(start, 0, this.length, 0), e = clamp(end, 0, this.length, this.length);
    if (e <= s) return '';
    return host.decode(bytesOf(new Uint8Array(this.buffer, this.byteOffset + s, e - s)), encodingOf(encoding));
  }
  toJSON() { return { type: 'Buffer', data: Array.from(this) }; }
  equals(other) { return Buffer.compare(this, other) === 0; }
  compare(other) { return Buffer.compare(this, other); }
  slice(start, end) {
    const s = clamp(start, 0, this.length, 0), e = clamp(end, 0, this.length, this.length);
    return new Buffer(this.buffer, this.byteOffset + s, Math.max(0, e - s));
  }
  subarray(start, end) { return this.slice(start, end); }
}
return { Buffer };
})`,
  crypto: String.raw`(function (lib) {
'use strict';
const { host, freeze, bytesOf } = lib;
const Buffer = lib.load('buffer').Buffer;
// ---- crypto --------------------------------------------------------------------------------
function toBytes(data, encoding) {
  return typeof data === 'string' ? Buffer.from(data, encoding) : Buffer.from(data);
}
class Hash {
  constructor(algorithm, key) {
    this._algorithm = String(algorithm);
    this._key = key;
    this._chunks = [];
    this._done = false;
    host.digest(this._algorithm, new ArrayBuffer(0), key); // throws for an unknown algorithm
  }
  update(data, encoding) {
    if (this._done) throw new Error('Digest already called');
    this._chunks.push(toBytes(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this._done) throw new Error('Digest already called');
    this._done = true;
    const out = new Buffer(host.digest(this._algorithm, bytesOf(Buffer.concat(this._chunks)), this._key));
    return encoding === undefined || encoding === 'buffer' ? out : out.toString(encoding);
  }
}
const MAX_RANDOM_BYTES = 16 * 1024 * 1024;
const cryptoModule = freeze({
  createHash: (algorithm) => new Hash(algorithm, undefined),
  createHmac: (algorithm, key) => new Hash(algorithm, bytesOf(toBytes(key))),
  randomUUID: () => host.randomUUID(),
  randomBytes(size) {
    if (!Number.isInteger(size) || size < 0 || size > MAX_RANDOM_BYTES) {
      throw new RangeError('randomBytes: size must be an integer between 0 and ' + MAX_RANDOM_BYTES);
    }
    return new Buffer(host.randomBytes(size));
  },
  timingSafeEqual(a, b) {
    if (a.byteLength !== b.byteLength) throw new RangeError('Input buffers must have the same byte length');
    const x = new Uint8Array(bytesOf(a)), y = new Uint8Array(bytesOf(b));
    let diff = 0;
    for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
    return diff === 0;
  },
});
return cryptoModule;
})`,
  url: String.raw`(function (lib) {
'use strict';
const { host, parse, stringify, freeze } = lib;
// ---- URL, URLSearchParams ------------------------------------------------------------------
const urlState = new WeakMap();
const paramsState = new WeakMap();
function urlOf(self) {
  const st = urlState.get(self);
  if (!st) throw new TypeError('not a URL');
  return st;
}
function paramsOf(self) {
  const st = paramsState.get(self);
  if (!st) throw new TypeError('not a URLSearchParams');
  return st;
}
const URL_PARTS = ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'];
class URL {
  constructor(url, base) {
    if (arguments.length === 0) throw new TypeError('URL: 1 argument required');
    const json = host.urlParse(String(url), base === undefined ? undefined : String(base));
    if (json === null) {
      const err = new TypeError('Invalid URL');
      err.code = 'ERR_INVALID_URL';
      err.input = String(url);
      throw err;
    }
    urlState.set(this, { parts: parse(json), params: null });
  }
  static canParse(url, base) {
    return host.urlParse(String(url), base === undefined ? undefined : String(base)) !== null;
  }
  get searchParams() {
    const st = urlOf(this);
    if (!st.params) {
      st.params = new URLSearchParams(st.parts.search);
      paramsOf(st.params).url = this;
    }
    return st.params;
  }
  toString() { return urlOf(this).parts.href; }
  toJSON() { return urlOf(this).parts.href; }
}
for (const part of URL_PARTS) {
  const descriptor = { enumerable: true, configurable: true, get() { return urlOf(this).parts[part]; } };
  if (part !== 'origin') {
    descriptor.set = function (value) {
      const st = urlOf(this);
      const json = host.urlSet(st.parts.href, part, String(value));
      if (json === null) throw new TypeError('Invalid URL');
      st.parts = parse(json);
      if (st.params && (part === 'search' || part === 'href')) paramsOf(st.params).list = parse(host.qsParse(st.parts.search));
    };
  }
  Object.defineProperty(URL.prototype, part, descriptor);
}
function paramsChanged(st) {
  if (!st.url) return;
  const u = urlOf(st.url);
  const json = host.urlSet(u.parts.href, 'search', host.qsSerialize(stringify(st.list)));
  if (json !== null) u.parts = parse(json);
}
class URLSearchParams {
  constructor(init) {
    let list = [];
    if (init === undefined || init === null) list = [];
    else if (init instanceof URLSearchParams) list = paramsOf(init).list.map((p) => [p[0], p[1]]);
    else if (typeof init === 'object' || typeof init === 'function') {
      if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError('Each query pair must be an iterable [name, value] tuple');
          list.push([String(p[0]), String(p[1])]);
        }
      } else {
        for (const key of Object.keys(init)) list.push([key, String(init[key])]);
      }
    } else list = parse(host.qsParse(String(init)));
    paramsState.set(this, { list, url: null });
  }
  get size() { return paramsOf(this).list.length; }
  append(name, value) { const st = paramsOf(this); st.list.push([String(name), String(value)]); paramsChanged(st); }
  delete(name, value) {
    const st = paramsOf(this), n = String(name), v = value === undefined ? undefined : String(value);
    st.list = st.list.filter((p) => !(p[0] === n && (v === undefined || p[1] === v)));
    paramsChanged(st);
  }
  get(name) { const p = paramsOf(this).list.find((q) => q[0] === String(name)); return p ? p[1] : null; }
  getAll(name) { return paramsOf(this).list.filter((q) => q[0] === String(name)).map((q) => q[1]); }
  has(name, value) {
    const n = String(name), v = value === undefined ? undefined : String(value);
    return paramsOf(this).list.some((p) => p[0] === n && (v === undefined || p[1] === v));
  }
  set(name, value) {
    const st = paramsOf(this), n = String(name), v = String(value);
    const i = st.list.findIndex((p) => p[0] === n);
    if (i < 0) st.list.push([n, v]);
    else st.list = st.list.filter((p, j) => j <= i || p[0] !== n).map((p, j) => (j === i ? [n, v] : p));
    paramsChanged(st);
  }
  sort() {
    const st = paramsOf(this);
    // Stable sort by code units of the name, as the standard says.
    st.list = st.list.map((p, i) => [p, i]).sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1])).map((x) => x[0]);
    paramsChanged(st);
  }
  forEach(callback, thisArg) { for (const p of paramsOf(this).list.slice()) callback.call(thisArg, p[1], p[0], this); }
  *entries() { for (const p of paramsOf(this).list.slice()) yield [p[0], p[1]]; }
  *keys() { for (const p of paramsOf(this).list.slice()) yield p[0]; }
  *values() { for (const p of paramsOf(this).list.slice()) yield p[1]; }
  [Symbol.iterator]() { return this.entries(); }
  toString() { return host.qsSerialize(stringify(paramsOf(this).list)); }
}
const urlModule = freeze({ URL, URLSearchParams });
return urlModule;
})`,
  axios: String.raw`(function (lib) {
'use strict';
const { stringify, NativePromise, bytesOf, hostCall } = lib;
const Buffer = lib.load('buffer').Buffer;
const URLSearchParams = lib.load('url').URLSearchParams;
// ---- axios ---------------------------------------------------------------------------------
const METHODS_WITHOUT_DATA = ['get', 'delete', 'head', 'options'];
const METHODS_WITH_DATA = ['post', 'put', 'patch'];
function lowerKeys(headers) {
  const out = {};
  if (headers) for (const k of Object.keys(headers)) if (headers[k] !== undefined && headers[k] !== null) out[k.toLowerCase()] = String(headers[k]);
  return out;
}
function mergeConfig(a, b) {
  const merged = Object.assign({}, a, b);
  merged.headers = Object.assign(lowerKeys(a && a.headers), lowerKeys(b && b.headers));
  if ((a && a.params) || (b && b.params)) merged.params = Object.assign({}, a && a.params, b && b.params);
  return merged;
}
function paramValue(v) { return v instanceof Date ? v.toISOString() : typeof v === 'object' ? stringify(v) : String(v); }
function buildUrl(config) {
  let url = String(config.url === undefined ? '' : config.url);
  if (config.baseURL && !/^[a-z][a-z0-9+.-]*:/i.test(url)) {
    url = String(config.baseURL).replace(/\/+$/, '') + (url ? '/' + url.replace(/^\/+/, '') : '');
  }
  const params = config.params;
  if (params) {
    const search = params instanceof URLSearchParams ? params : new URLSearchParams();
    if (!(params instanceof URLSearchParams)) {
      for (const key of Object.keys(params)) {
        const v = params[key];
        if (v === undefined || v === null) continue;
        if (Array.isArray(v)) for (const item of v) search.append(key + '[]', paramValue(item));
        else search.append(key, paramValue(v));
      }
    }
    const qs = search.toString();
    if (qs) {
      const hash = url.indexOf('#');
      if (hash >= 0) url = url.slice(0, hash);
      url += (url.indexOf('?') >= 0 ? '&' : '?') + qs;
    }
  }
  return url;
}
function axiosError(message, code, config, response) {
  const err = new Error(message);
  err.name = 'AxiosError';
  err.code = code;
  err.config = config;
  err.isAxiosError = true;
  if (response) { err.response = response; err.status = response.status; }
  err.toJSON = () => ({ name: err.name, message: err.message, code: err.code, status: err.status });
  return err;
}
function request(defaults, config) {
  const merged = mergeConfig(defaults, config);
  const method = String(merged.method || 'get').toLowerCase();
  const headers = merged.headers;
  let body, bytes;
  const data = merged.data;
  if (data !== undefined && data !== null) {
    if (typeof data === 'string') body = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) bytes = bytesOf(data);
    else if (data instanceof URLSearchParams) {
      body = data.toString();
      if (!headers['content-type']) headers['content-type'] = 'application/x-www-form-urlencoded;charset=utf-8';
    } else {
      body = stringify(data);
      if (!headers['content-type']) headers['content-type'] = 'application/json';
    }
  }
  if (!headers.accept) headers.accept = 'application/json, text/plain, */*';
  const responseType = merged.responseType === undefined ? 'json' : String(merged.responseType);
  if (['json', 'text', 'arraybuffer'].indexOf(responseType) < 0) {
    return NativePromise.reject(axiosError('responseType must be json, text or arraybuffer', 'ERR_BAD_OPTION_VALUE', merged));
  }
  const payload = {
    method: method.toUpperCase(), url: buildUrl(merged), headers, body,
    timeoutMs: typeof merged.timeout === 'number' && merged.timeout > 0 ? merged.timeout : undefined,
    responseType, maxRedirects: merged.maxRedirects,
  };
  return hostCall('http', payload, bytes).then((answer) => {
    const r = answer.value;
    const response = { status: r.status, statusText: r.statusText, headers: r.headers,
      data: answer.bytes !== undefined ? new Buffer(answer.bytes) : r.data, config: merged, request: undefined };
    const validate = merged.validateStatus === undefined ? (s) => s >= 200 && s < 300 : merged.validateStatus;
    if (validate === null || validate(response.status)) return response;
    throw axiosError('Request failed with status code ' + response.status,
      response.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST', merged, response);
  }, (err) => {
    if (err && typeof err === 'object') { err.config = merged; err.isAxiosError = true; }
    throw err;
  });
}
function createAxios(defaults) {
  const instance = function axios(urlOrConfig, config) {
    return typeof urlOrConfig === 'string' ? request(defaults, Object.assign({}, config, { url: urlOrConfig })) : request(defaults, urlOrConfig);
  };
  instance.defaults = defaults;
  instance.request = (config) => request(defaults, config);
  for (const m of METHODS_WITHOUT_DATA) instance[m] = (url, config) => request(defaults, Object.assign({}, config, { url, method: m }));
  for (const m of METHODS_WITH_DATA) instance[m] = (url, data, config) => request(defaults, Object.assign({}, config, { url, method: m, data }));
  instance.create = (more) => createAxios(mergeConfig(defaults, more || {}));
  instance.isAxiosError = (e) => !!(e && e.isAxiosError);
  return instance;
}
return { createAxios };
})`,
};

/** The core prelude, evaluated in every call's fresh context. */
export const ISOLATE_PRELUDE = String.raw`(() => {
'use strict';
const host = globalThis.__baton;
delete globalThis.__baton;
const parse = JSON.parse, stringify = JSON.stringify, NativePromise = Promise, freeze = Object.freeze;
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const indirectEval = eval;
function bytesOf(view) {
  if (view instanceof ArrayBuffer) return view;
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view.buffer;
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}
// ---- host calls ----------------------------------------------------------------------------
function hostError(shape) {
  const err = new Error(shape.message);
  err.name = shape.name || 'Error';
  if (shape.code !== undefined) err.code = shape.code;
  return err;
}
function hostCall(op, payload, bytes) {
  return host.call(op, stringify(payload === undefined ? null : payload), bytes).then((answer) => {
    if (!answer.ok) throw hostError(parse(answer.json));
    return { value: parse(answer.json), bytes: answer.bytes };
  });
}

// ---- lazy sections -------------------------------------------------------------------------
const loaded = {};
const lib = { host, parse, stringify, NativePromise, freeze, hasOwn, bytesOf, hostCall, load };
function load(name) {
  if (!hasOwn(loaded, name)) loaded[name] = (0, indirectEval)(host.source(name))(lib);
  return loaded[name];
}
/** A global defined on first read (or replaced by a write) without evaluating its section first. */
function lazyGlobal(name, section, key) {
  const settle = (value) => Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(globalThis, name, {
    configurable: true, enumerable: false,
    get() { const value = load(section)[key]; settle(value); return value; },
    set(value) { settle(value); },
  });
}

// ---- console, ctx --------------------------------------------------------------------------
function formatArgs(args) {
  return args.map((a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack ? String(a.name) + ': ' + a.message + '\n' + a.stack : String(a.name) + ': ' + a.message;
    try { const s = stringify(a); return s === undefined ? String(a) : s; } catch (e) { return String(a); }
  }).join(' ');
}
const consoleObject = {};
for (const level of ['log', 'info', 'debug', 'warn', 'error']) {
  const hostLevel = level === 'warn' || level === 'error' ? level : 'info';
  consoleObject[level] = (...args) => { host.log(hostLevel, formatArgs(args)); };
}
globalThis.console = freeze(consoleObject);
lazyGlobal('Buffer', 'buffer', 'Buffer');
lazyGlobal('URL', 'url', 'URL');
lazyGlobal('URLSearchParams', 'url', 'URLSearchParams');

const ALLOWED = ['axios', 'codekit', 'crypto', 'url'];
function deepFreeze(value) {
  if (value && typeof value === 'object') { for (const k of Object.keys(value)) deepFreeze(value[k]); freeze(value); }
  return value;
}
function makeCtx(info) {
  const modules = {};
  const declared = info.secretNames.slice();
  const secretsTarget = {};
  for (const name of declared) {
    Object.defineProperty(secretsTarget, name, { enumerable: true, get() {
      const value = host.secret(name);
      if (value === undefined) {
        const err = new Error('secret "' + name + '" is declared but not stored');
        err.name = 'MissingSecretError';
        err.code = 'MISSING_SECRET';
        throw err;
      }
      return value;
    } });
  }
  const secrets = new Proxy(secretsTarget, {
    get(target, key, receiver) {
      if (typeof key === 'string' && !hasOwn(target, key) && key !== 'then' && key !== 'toJSON' && !(key in Object.prototype)) {
        throw new Error('ctx.secrets.' + key + ': not declared; declared secrets: ' + (declared.length ? declared.join(', ') : '(none)'));
      }
      return Reflect.get(target, key, receiver);
    },
    set() { return false; },
    defineProperty() { return false; },
    deleteProperty() { return false; },
  });
  return freeze({
    runId: info.runId,
    stepId: info.stepId,
    attempt: info.attempt,
    idempotencyKey: info.idempotencyKey,
    run: deepFreeze(info.run),
    env: freeze(Object.assign({}, info.env)),
    secrets,
    require(name) {
      const n = String(name);
      if (ALLOWED.indexOf(n) < 0) throw new Error('ctx.require(' + stringify(n) + '): not allowed; allowed modules: ' + ALLOWED.join(', '));
      if (!modules[n]) modules[n] = n === 'axios' ? load('axios').createAxios({ headers: {} }) : load(n);
      return modules[n];
    },
    log(...args) { host.log('info', formatArgs(args)); },
    progress(fraction, message) {
      return hostCall('progress', { fraction: Number(fraction), message: message === undefined ? undefined : String(message) }).then(() => undefined);
    },
    assets: freeze({
      saveBuffer(data, meta) {
        if (!(data instanceof ArrayBuffer || ArrayBuffer.isView(data))) {
          return NativePromise.reject(new TypeError('ctx.assets.saveBuffer: expected a Buffer or Uint8Array'));
        }
        const m = meta || {};
        return hostCall('saveBuffer', { name: String(m.name), mimeType: String(m.mimeType) }, bytesOf(data)).then((a) => a.value);
      },
    }),
    deliverables: freeze({
      create(deliverable) { return hostCall('deliverable', deliverable).then((a) => a.value); },
    }),
  });
}

return {
  call(main, inputJson, infoJson) { return main(parse(inputJson), makeCtx(parse(infoJson))); },
  ${RESULT_HELPERS_JS}
};
})()`;
