/**
 * A real local HTTP receiver for webhooks and api-agent calls. Verifies Standard Webhooks
 * signatures with the test secret and records everything it receives.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
}

/** A verified webhook message. */
export interface WebhookMessage {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

export interface Receiver {
  url: string;
  requests: Received[];
  /** Webhooks whose signature verified, in arrival order. */
  webhooks: WebhookMessage[];
  /** Webhooks whose signature did not verify. */
  rejected: number;
  /** Delay the answer to requests on `path` (milliseconds), e.g. to kill a worker mid-call. */
  delays: Map<string, number>;
  /** Answer 500 to every webhook (verified ones are not recorded) while set. */
  failWebhooks: boolean;
  close(): Promise<void>;
}

/** Start a receiver on an ephemeral port; `/webhooks` verifies signatures with `secret`. */
export async function startReceiver(secret: string): Promise<Receiver> {
  const verifier = new Webhook(secret);
  const state: Omit<Receiver, 'url' | 'close'> = { requests: [], webhooks: [], rejected: 0, delays: new Map(), failWebhooks: false };
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '/';
      let json: unknown = null;
      try {
        json = body ? (JSON.parse(body) as unknown) : null;
      } catch {
        json = null;
      }
      state.requests.push({ path, headers: req.headers, body, json });
      if (path === '/webhooks') {
        if (state.failWebhooks) {
          res.writeHead(500).end();
          return;
        }
        try {
          state.webhooks.push(verifier.verify(body, req.headers as Record<string, string>) as WebhookMessage);
          res.writeHead(204).end();
        } catch {
          state.rejected += 1;
          res.writeHead(401).end();
        }
        return;
      }
      const delayMs = state.delays.get(path) ?? 0;
      state.delays.delete(path);
      const timer = setTimeout(() => {
        timers.delete(timer);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, path }));
      }, delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
