/**
 * The one outbound policy for every outgoing request Baton makes on a run's behalf (http steps,
 * api agents, `ctx.require('axios')` in functions, webhooks).
 *
 * `createOutboundHttp(policy)` returns an {@link OutboundHttp} built on `node:http`/`node:https`
 * with its own agents whose `lookup` checks every resolved address before the socket connects, so
 * the address checked is the address connected to (no time-of-check/time-of-use gap, no DNS
 * rebinding). IP-literal hosts (for which Node never calls `lookup`) are checked before the
 * request starts; every redirect hop goes through both checks again.
 *
 * Denied unless the host or the address is in {@link OutboundPolicy.allow} (sources: the IANA
 * IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890):
 * - IPv4: `0.0.0.0/8` "this network" (RFC 791, RFC 1122), `127.0.0.0/8` loopback (RFC 1122),
 *   `169.254.0.0/16` link-local incl. the `169.254.169.254` cloud metadata service (RFC 3927),
 *   `10/8`, `172.16/12`, `192.168/16` private (RFC 1918), `100.64.0.0/10` shared/CGNAT
 *   (RFC 6598), `224.0.0.0/4` multicast (RFC 5771), `240.0.0.0/4` reserved (RFC 1112) and
 *   `255.255.255.255` broadcast (RFC 919), `192.0.0.0/24` IETF protocol assignments (RFC 6890),
 *   documentation `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (RFC 5737), benchmarking
 *   `198.18.0.0/15` (RFC 2544), `192.88.99.0/24` 6to4 relay anycast (RFC 7526).
 * - IPv6: `::` unspecified and `::1` loopback (RFC 4291), `fe80::/10` link-local (RFC 4291),
 *   `fc00::/7` unique-local incl. `fd00:ec2::254` AWS metadata (RFC 4193), `ff00::/8` multicast
 *   (RFC 4291), `fec0::/10` deprecated site-local (RFC 3879), `100::/64` discard (RFC 6666),
 *   NAT64 `64:ff9b::/96` and `64:ff9b:1::/48` (RFC 6052, RFC 8215), SIIT `::ffff:0:0:0/96`
 *   (RFC 6145), 6to4 `2002::/16` (RFC 3056), Teredo `2001::/32` (RFC 4380), benchmarking
 *   `2001:2::/48` (RFC 5180), ORCHID (RFC 7343) and documentation `2001:db8::/32` (RFC 3849):
 *   the translation and tunnel prefixes embed IPv4 addresses that could reach private networks.
 *   IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2) is judged as the IPv4 address it maps.
 * - Names: `metadata.google.internal` and `metadata` (GCP), `instance-data` (AWS), before DNS.
 *
 * Address classification and CIDR matching: `ipaddr.js`.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable } from 'node:stream';
import ipaddr from 'ipaddr.js';
import { inSpan, withTraceHeaders } from './telemetry.js';
import {
  CancelledError,
  OutboundDeniedError,
  OutputTooLargeError,
  RetryLaterError,
  ValidationError,
} from './errors.js';

/** HTTP methods outgoing requests may use. */
export type OutboundMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

/** How the response body is returned in {@link OutboundResponse.data}. */
export type OutboundResponseType = 'json' | 'text' | 'arraybuffer';

/** One outgoing request. */
export interface OutboundRequest {
  method: OutboundMethod;
  /** Absolute `http:` or `https:` URL. */
  url: string;
  /** Request headers (any case). */
  headers?: Record<string, string>;
  /** Query parameters appended to `url`. */
  query?: Record<string, string | number | boolean>;
  /**
   * Body: a `string` or `Uint8Array` is sent as is; anything else (not `undefined`) as JSON with
   * `Content-Type: application/json` unless a content type is given.
   */
  body?: unknown;
  /** Budget for the whole exchange (connect, send, headers and body), in milliseconds. */
  timeoutMs: number;
  /** Aborting it cancels the request (→ `CancelledError`). */
  signal?: AbortSignal;
  /**
   * `json` (default): parsed JSON when the content type is JSON, else text; `text`; `arraybuffer`:
   * the raw bytes as a `Uint8Array`.
   */
  responseType?: OutboundResponseType;
  /** Response bytes accepted; a longer body fails with `OutputTooLargeError`. Default 10 MiB. */
  maxBodyBytes?: number;
  /** Redirects followed (each hop checked against the policy); default 5, 0 = none. */
  maxRedirects?: number;
}

/** A response of any status (the caller decides what a status means). */
export interface OutboundResponse {
  status: number;
  /** Response headers, lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** See {@link OutboundRequest.responseType}. */
  data: unknown;
}

/**
 * Perform one request under the outbound policy.
 * @throws {OutboundDeniedError} when the destination (after DNS resolution, or on a redirect) is
 *   not allowed.
 * @throws {CancelledError} when `signal` aborts.
 * @throws {RetryLaterError} on timeout and network errors (connection refused or reset, DNS).
 * @throws {OutputTooLargeError} when the body exceeds `maxBodyBytes`.
 * @throws {ValidationError} (field `url`) for a URL that is not absolute http(s).
 */
export type OutboundHttp = (request: OutboundRequest) => Promise<OutboundResponse>;

/** The policy's settings (from `config.outbound` and `NODE_ENV`). */
export interface OutboundPolicy {
  /**
   * Hosts (exact names, or `*.example.com`) and CIDRs (`10.0.0.0/8`, `::1/128`) that may be reached
   * although they resolve to loopback, link-local, private or cloud-metadata addresses.
   */
  allow: readonly string[];
}

/** Default cap of a response body, in bytes (10 MiB). */
export const DEFAULT_OUTBOUND_MAX_BODY_BYTES = 10 * 1024 * 1024;
/** Default number of redirects followed. */
export const DEFAULT_OUTBOUND_MAX_REDIRECTS = 5;

/** One resolved address, as `dns.lookup(host, {all: true})` gives it. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves a host name to its addresses. The default is `dns.lookup` (the system resolver, as
 * Node uses). Tests inject one to simulate a public-looking name that resolves to loopback.
 */
export type OutboundResolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** Options of {@link createOutboundHttp}. */
export interface OutboundHttpOptions {
  /** `User-Agent` sent unless the request sets one. */
  userAgent?: string;
  /** Name resolution (default: the system resolver, `dns.lookup` with `all: true`). */
  resolve?: OutboundResolver;
}

/** Host names of cloud metadata services, denied before any DNS (unless allow-listed). */
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

/** IPv4 ranges of ipaddr.js that are publicly routable unicast (everything else is denied). */
const PUBLIC_V4 = new Set(['unicast', 'as112', 'amt']);
/** IPv6 ranges of ipaddr.js that are publicly routable unicast (`ipv4Mapped` is judged as IPv4). */
const PUBLIC_V6 = new Set(['unicast', 'as112v6', 'amt']);

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** The parsed allow-list. */
interface AllowList {
  hosts: Set<string>;
  /** Suffixes of `*.example.com` entries, with the leading dot (`.example.com`). */
  suffixes: string[];
  cidrs: Cidr[];
}

function normaliseHost(host: string): string {
  return host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

/** IPv4-mapped IPv6 addresses become the IPv4 address they map (RFC 4291 §2.5.5.2). */
function unmap(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? (address as ipaddr.IPv6).toIPv4Address()
    : address;
}

/** Host names as allow-list entries: letters, digits, `_`, `.` and `-`. */
const HOST_ENTRY = /^[a-z0-9_.-]+$/;
/** `*.example.com` allow-list entries. */
const SUFFIX_ENTRY = /^\*\.[a-z0-9_.-]+$/;

/**
 * Whether `entry` is a valid {@link OutboundPolicy.allow} entry: a host name, `*.suffix`, an IP
 * address or a CIDR (used by `loadConfig` to check `OUTBOUND_ALLOW`).
 */
export function isOutboundAllowEntry(entry: string): boolean {
  const e = entry.trim().toLowerCase();
  return ipaddr.isValidCIDR(e) || ipaddr.isValid(normaliseHost(e)) || SUFFIX_ENTRY.test(e) || HOST_ENTRY.test(e);
}

/** @throws {ValidationError} (field `allow`) for an entry that is neither a host nor a CIDR. */
function parseAllowList(entries: readonly string[]): AllowList {
  const list: AllowList = { hosts: new Set(), suffixes: [], cidrs: [] };
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (!isOutboundAllowEntry(entry)) {
      throw new ValidationError(`allow: "${raw}" is neither a host name, "*.suffix" nor a CIDR`, { field: 'allow' });
    }
    if (ipaddr.isValidCIDR(entry)) {
      const [address, bits] = ipaddr.parseCIDR(entry);
      const plain = unmap(address);
      list.cidrs.push([plain, plain === address ? bits : Math.max(0, bits - 96)]);
    } else if (ipaddr.isValid(normaliseHost(entry))) {
      const address = unmap(ipaddr.parse(normaliseHost(entry)));
      list.cidrs.push([address, address.kind() === 'ipv4' ? 32 : 128]);
    } else if (SUFFIX_ENTRY.test(entry)) {
      list.suffixes.push(normaliseHost(entry.slice(1)));
    } else {
      list.hosts.add(normaliseHost(entry));
    }
  }
  return list;
}

function hostAllowed(list: AllowList, host: string): boolean {
  return list.hosts.has(host) || list.suffixes.some((suffix) => host.endsWith(suffix));
}

function addressAllowed(list: AllowList, address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  return list.cidrs.some(([net, bits]) => net.kind() === address.kind() && address.match([net, bits]));
}

/**
 * Why an address may not be reached by default, or `undefined` when it is public unicast.
 * @param text - an IPv4 or IPv6 address (no brackets).
 * @returns the ipaddr.js range name (`loopback`, `private`, `linkLocal`, `carrierGradeNat`,
 *   `uniqueLocal`, `reserved`, …), or `undefined` for a publicly routable address.
 */
export function deniedAddressRange(text: string): string | undefined {
  if (!ipaddr.isValid(text)) return 'not an IP address';
  const address = unmap(ipaddr.parse(text));
  if (address.kind() === 'ipv4') {
    const range = (address as ipaddr.IPv4).range();
    return PUBLIC_V4.has(range) ? undefined : range;
  }
  const range = (address as ipaddr.IPv6).range();
  return PUBLIC_V6.has(range) ? undefined : range;
}

/** The policy's decision for one address of `host`; throws when denied. */
function checkAddress(list: AllowList, host: string, text: string): void {
  if (hostAllowed(list, host)) return;
  const address = ipaddr.isValid(text) ? unmap(ipaddr.parse(text)) : undefined;
  if (address && addressAllowed(list, address)) return;
  const range = deniedAddressRange(text);
  if (range === undefined) return;
  const shown = host === text ? text : `${host} (${text})`;
  throw new OutboundDeniedError(
    `outbound request to ${shown} denied: ${range} addresses are not reachable unless allow-listed in OUTBOUND_ALLOW`,
    { details: { host, address: text, range } },
  );
}

/** Name-based denial (cloud metadata), before DNS. */
function checkHostName(list: AllowList, host: string): void {
  if (METADATA_HOSTS.has(host) && !hostAllowed(list, host)) {
    throw new OutboundDeniedError(`outbound request to ${host} denied: cloud metadata service`, {
      details: { host, range: 'metadata' },
    });
  }
}

const systemResolver: OutboundResolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
      if (err) reject(err);
      else resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
    });
  });

/**
 * A `net` lookup function that resolves with `resolver` and refuses the connection when any
 * resolved address is denied (one denied address is enough: a name that mixes public and private
 * answers is a rebinding attempt, not a configuration to guess around).
 */
function guardedLookup(list: AllowList, resolver: OutboundResolver): LookupFunction {
  return (hostname, options, callback) => {
    const host = normaliseHost(hostname);
    resolver(hostname).then(
      (resolved) => {
        const wanted = options.family === 4 || options.family === 6 ? resolved.filter((a) => a.family === options.family) : resolved;
        try {
          checkHostName(list, host);
          if (wanted.length === 0) {
            const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
            err.code = 'ENOTFOUND';
            throw err;
          }
          for (const a of wanted) checkAddress(list, host, a.address);
        } catch (err) {
          callback(err as NodeJS.ErrnoException, '', 4);
          return;
        }
        if (options.all) callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
        else callback(null, wanted[0]?.address ?? '', wanted[0]?.family ?? 4);
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, '', 4),
    );
  };
}

/** Parse and check an absolute http(s) URL. @throws {ValidationError} field `url`. */
function parseUrl(url: string, field: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(`${field}: expected an absolute http(s) URL, got "${url.slice(0, 200)}"`, { field });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(`${field}: expected an http or https URL, got ${parsed.protocol}`, { field });
  }
  return parsed;
}

function flattenHeaders(raw: IncomingMessage['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    flat[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

/** Headers that carry credentials: dropped when a redirect leaves the origin (as fetch does). */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** Body bytes and the content type they imply. @throws {ValidationError} field `body`. */
function encodeBody(body: unknown): { bytes: Buffer; contentType?: string } | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), contentType: 'text/plain; charset=utf-8' };
  if (body instanceof Uint8Array) return { bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength), contentType: 'application/octet-stream' };
  let json: string | undefined;
  try {
    json = JSON.stringify(body);
  } catch (err) {
    throw new ValidationError(`body: not JSON-serialisable (${(err as Error).message})`, { field: 'body', cause: err });
  }
  if (json === undefined) throw new ValidationError('body: not JSON-serialisable', { field: 'body' });
  return { bytes: Buffer.from(json, 'utf8'), contentType: 'application/json' };
}

/** The decoded body stream for `Content-Encoding` gzip, deflate or br (else the raw stream). */
function decoded(response: IncomingMessage): Readable {
  const encoding = (response.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (!decoder) return response;
  response.on('error', (err) => decoder.destroy(err));
  return response.pipe(decoder);
}

/**
 * Read a (decoded) body, refusing more than `limit` bytes.
 * @throws {OutputTooLargeError} past `limit` (the connection is destroyed at once).
 */
async function readBody(response: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = Number(response.headers['content-length']);
  const tooLarge = () =>
    new OutputTooLargeError(`${what}: response body exceeds ${limit} bytes`, { details: { maxBodyBytes: limit } });
  if (!response.headers['content-encoding'] && Number.isFinite(declared) && declared > limit) {
    response.destroy();
    throw tooLarge();
  }
  const stream = decoded(response);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    size += bytes.length;
    if (size > limit) {
      stream.destroy();
      response.destroy();
      throw tooLarge();
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, size);
}

function decodeData(bytes: Buffer, headers: Record<string, string>, responseType: OutboundResponseType): unknown {
  if (responseType === 'arraybuffer') return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = bytes.toString('utf8');
  if (responseType === 'text') return text;
  if (!/[/+]json\b/i.test(headers['content-type'] ?? '') || text.trim() === '') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Redirect statuses (RFC 9110 §15.4). */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Build the {@link OutboundHttp} of a policy.
 *
 * Redirects: `GET` and `HEAD` follow 301, 302, 303, 307 and 308; other methods follow only 307
 * and 308 (which keep method and body, RFC 9110 §15.4.8–9) and get any other 3xx back as the
 * response, as is the last 3xx once `maxRedirects` hops were followed. A hop to another origin
 * drops `Authorization`, `Cookie` and `Proxy-Authorization`.
 * Connections are not kept alive, so no socket checked under one request is reused unchecked.
 *
 * @param policy - the allow-list (`config.outbound`).
 * @param options - `userAgent`; `resolve` to replace the system resolver (tests).
 * @returns the request function; besides {@link OutboundHttp}'s errors it throws
 *   {@link ValidationError} with field `headers` for a header name or value Node refuses (e.g. CR/LF).
 * @throws {ValidationError} (field `allow`) for an allow-list entry that is neither host nor CIDR.
 */
export function createOutboundHttp(policy: OutboundPolicy, options: OutboundHttpOptions = {}): OutboundHttp {
  const list = parseAllowList(policy.allow);
  const lookup = guardedLookup(list, options.resolve ?? systemResolver);
  // Own agents (never the global ones): the lookup is part of how their sockets are made.
  const httpAgent = new HttpAgent({ keepAlive: false, lookup });
  const httpsAgent = new HttpsAgent({ keepAlive: false, lookup });

  /** One hop. */
  const send = (
    url: URL,
    method: OutboundMethod,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal,
  ): Promise<IncomingMessage> => {
    const host = normaliseHost(url.hostname);
    checkHostName(list, host);
    if (isIP(host) !== 0) checkAddress(list, host, host);
    const https = url.protocol === 'https:';
    // Tracing: one client span per hop, whose context goes out as `traceparent` (lib/telemetry.ts).
    const attributes = { 'http.request.method': method, 'server.address': host, 'url.path': url.pathname };
    return inSpan(method, { kind: 'client', attributes }, (span) => new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, {
        method,
        headers: withTraceHeaders(body === undefined ? headers : { ...headers, 'content-length': String(body.length) }),
        agent: https ? httpsAgent : httpAgent,
        signal,
      });
      req.once('response', (response: IncomingMessage) => {
        span.setAttribute('http.response.status_code', response.statusCode ?? 0);
        resolve(response);
      });
      req.once('error', reject);
      req.end(body);
    }));
  };

  return async (request) => {
    const method = request.method;
    let url = parseUrl(request.url, 'url');
    for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.append(key, String(value));
    const what = `${method} ${url.origin}${url.pathname}`;
    const maxBodyBytes = request.maxBodyBytes ?? DEFAULT_OUTBOUND_MAX_BODY_BYTES;
    const maxRedirects = request.maxRedirects ?? DEFAULT_OUTBOUND_MAX_REDIRECTS;
    const responseType = request.responseType ?? 'json';
    const { signal } = request;
    if (signal?.aborted) throw new CancelledError(`${what} was cancelled`);

    const encoded = encodeBody(request.body);
    let headers: Record<string, string> = { ...(request.headers ?? {}) };
    if (encoded?.contentType && !hasHeader(headers, 'content-type')) headers['content-type'] = encoded.contentType;
    if (options.userAgent && !hasHeader(headers, 'user-agent')) headers['user-agent'] = options.userAgent;
    const body = encoded?.bytes;

    const deadline = AbortSignal.timeout(request.timeoutMs);
    const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      for (let hop = 0; ; hop += 1) {
        const response = await send(url, method, headers, body, abort);
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        const follow =
          REDIRECTS.has(status) &&
          location !== undefined &&
          hop < maxRedirects &&
          (method === 'GET' || method === 'HEAD' || status === 307 || status === 308);
        if (follow) {
          response.resume();
          let next: URL;
          try {
            next = new URL(location, url);
          } catch {
            throw new OutboundDeniedError(`${what}: redirect to an invalid URL "${location.slice(0, 200)}"`);
          }
          if (next.protocol !== 'http:' && next.protocol !== 'https:') {
            throw new OutboundDeniedError(`${what}: redirect to a ${next.protocol} URL refused`);
          }
          if (next.origin !== url.origin) {
            headers = Object.fromEntries(Object.entries(headers).filter(([key]) => !CREDENTIAL_HEADERS.has(key.toLowerCase())));
          }
          url = next;
          continue;
        }
        const responseHeaders = flattenHeaders(response.headers);
        const bytes = method === 'HEAD' ? Buffer.alloc(0) : await readBody(response, maxBodyBytes, what);
        return { status, headers: responseHeaders, data: decodeData(bytes, responseHeaders, responseType) };
      }
    } catch (err) {
      if (err instanceof OutboundDeniedError || err instanceof OutputTooLargeError || err instanceof ValidationError) throw err;
      const invalid = (err as { code?: unknown } | null)?.code;
      if (invalid === 'ERR_INVALID_CHAR' || invalid === 'ERR_INVALID_HTTP_TOKEN' || invalid === 'ERR_HTTP_INVALID_HEADER_VALUE') {
        throw new ValidationError(`headers: ${(err as Error).message}`, { field: 'headers', cause: err });
      }
      if (signal?.aborted) throw new CancelledError(`${what} was cancelled`, { cause: err });
      if (deadline.aborted) throw new RetryLaterError(`${what} timed out after ${request.timeoutMs} ms`, { cause: err });
      const code = (err as { code?: unknown } | null)?.code;
      const message = err instanceof Error ? err.message : String(err);
      throw new RetryLaterError(`${what} failed: ${typeof code === 'string' && !message.includes(code) ? `${code} ` : ''}${message}`, {
        cause: err,
      });
    }
  };
}
