/**
 * Requests Node's HTTP parser refuses before express sees them (a header section larger than
 * `--max-http-header-size`, 16 KiB by default; a malformed request line or header) answered in
 * the API's error shape `{error: {code, message, field?}}` instead of Node's empty-bodied 431/400.
 */
import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** Node's own mapping of parser errors to statuses (`lib/_http_server.js`). */
function statusOf(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return 413;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

function messageOf(status: number): { message: string; field?: string } {
  if (status === 431) return { message: 'the request headers are too large (at most 16 KiB in all)', field: 'headers' };
  if (status === 413) return { message: 'a chunk extension is too large', field: 'body' };
  if (status === 408) return { message: 'the request did not arrive in time' };
  return { message: 'malformed HTTP request (request line or headers)' };
}

/**
 * Answer the server's `clientError`s with a JSON error body and close the connection.
 * @param server - the API's HTTP server (before or after `listen`).
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = statusOf(err.code);
    // The answer to a HEAD has no body (the request line is in the packet being parsed).
    const head = err.rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    const body = head ? '' : JSON.stringify({ error: { code: 'VALIDATION_FAILED', ...messageOf(status) } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
}
