/**
 * Baton as an MCP server (issue 10), on the official TypeScript SDK (`@modelcontextprotocol/sdk`,
 * `McpServer`). The same server runs over streamable HTTP at `/mcp` (in the API, on the engine)
 * and over stdio (`baton mcp`, on the HTTP API): both give it a {@link BatonBackend}.
 *
 * Tools: `list_definitions`, `describe_definition` (with its input JSON Schema), `start_run`
 * (input validated against the definition's input schema; `waitSeconds` waits for the end or a
 * checkpoint), `get_run`, `list_approvals`, `decide_approval`, `cancel_run`, and one
 * `start_<slug>` per definition whose `input` schema is the definition's own
 * ({@link registerDefinitionTools}). Resource template: `baton://runs/{id}/manifest`.
 *
 * A checkpoint reached while `start_run` waits is put to the client through elicitation when
 * it declared the capability (a form with `decision` and `comment`; an accepted answer is
 * decided with the caller's credentials and the wait goes on); otherwise — or when the user
 * declines — the run is returned with `pendingApproval: {id, prompt, show, decisions}`.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { APPROVAL_STATUSES, type ApprovalStatus } from '../../engine/index.js';

/** A run as the tools read it (`GET /v1/runs/:id`). */
export interface RunSnapshot {
  id: string;
  status: string;
  output?: unknown;
  error?: unknown;
  approvals: Array<{ id: string; status: string; prompt: string; show: unknown; decisions: string[]; stepId: string }>;
  [key: string]: unknown;
}

/**
 * What the MCP tools do, against Baton: the engine with the caller's principal (HTTP `/mcp`), or
 * the HTTP API with an API key (`baton mcp`). Errors carry a `code` (Baton's taxonomy) when known.
 */
export interface BatonBackend {
  listDefinitions(): Promise<unknown>;
  /** The definition version (latest when `version` is omitted) with its `input` JSON Schema and steps. */
  describeDefinition(slug: string, version?: number): Promise<unknown>;
  startRun(body: { definition: string; version?: number; input: unknown; idempotencyKey?: string }): Promise<{ id: string; status: string }>;
  getRun(id: string): Promise<RunSnapshot>;
  listApprovals(status?: ApprovalStatus): Promise<unknown>;
  decideApproval(id: string, body: { decision: string; input?: unknown; comment?: string }): Promise<unknown>;
  cancelRun(id: string, reason?: string): Promise<unknown>;
  getManifest(id: string): Promise<unknown>;
}

/** Interval between run reads while `start_run` waits, in milliseconds. */
const WAIT_POLL_MS = 300;
/** Longest `waitSeconds`. */
const MAX_WAIT_SECONDS = 600;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function json(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value, null, 2) }] };
}

/** Run a tool body; a thrown error becomes an `isError` result naming its code. */
async function tool(fn: () => Promise<unknown>): Promise<CallToolResult> {
  try {
    return json(await fn());
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const field = (err as { field?: unknown }).field;
    const text = `${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}${typeof field === 'string' ? ` (field ${field})` : ''}`;
    return { isError: true, content: [{ type: 'text', text }] };
  }
}

/** What `start_run` (and each `start_<slug>` tool) is called with. */
interface StartArgs {
  definition: string;
  input: unknown;
  version?: number | undefined;
  idempotencyKey?: string | undefined;
  waitSeconds?: number | undefined;
}

/** Start a run and, with `waitSeconds`, wait for its end or a checkpoint (see the module doc). */
async function startAndWait(server: McpServer, backend: BatonBackend, args: StartArgs, requestId: string | number): Promise<unknown> {
  const started = await backend.startRun({
    definition: args.definition,
    input: args.input,
    ...(args.version === undefined ? {} : { version: args.version }),
    ...(args.idempotencyKey === undefined ? {} : { idempotencyKey: args.idempotencyKey }),
  });
  if (!args.waitSeconds) return { run: started };
  const deadline = Date.now() + args.waitSeconds * 1000;
  const asked = new Set<string>();
  for (;;) {
    const run = await backend.getRun(started.id);
    if (TERMINAL.has(run.status)) return { run };
    const pending = run.approvals.find((a) => a.status === 'pending');
    if (pending && !asked.has(pending.id)) {
      asked.add(pending.id);
      const answer = server.server.getClientCapabilities()?.elicitation
        ? await server.server.elicitInput(
            {
              mode: 'form',
              message: `${pending.prompt}\n\n${JSON.stringify(pending.show, null, 2)}`,
              requestedSchema: {
                type: 'object',
                properties: {
                  decision: { type: 'string', title: 'Decision', enum: pending.decisions },
                  comment: { type: 'string', title: 'Comment' },
                },
                required: ['decision'],
              },
            },
            { relatedRequestId: requestId, timeout: Math.max(1000, deadline - Date.now()) },
          )
        : undefined;
      const content = answer?.action === 'accept' ? answer.content : undefined;
      if (typeof content?.['decision'] === 'string') {
        await backend.decideApproval(pending.id, {
          decision: content['decision'],
          ...(typeof content['comment'] === 'string' && content['comment'] !== '' ? { comment: content['comment'] } : {}),
        });
        continue;
      }
      return { run, pendingApproval: { id: pending.id, prompt: pending.prompt, show: pending.show, decisions: pending.decisions } };
    }
    if (pending) return { run, pendingApproval: { id: pending.id, prompt: pending.prompt, show: pending.show, decisions: pending.decisions } };
    if (Date.now() >= deadline) return { run, waited: 'timed out before the run ended or reached a checkpoint' };
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}

/** An MCP tool name for a definition's own start tool: `start_kpi_tracking`. */
export function startToolName(slug: string): string {
  return `start_${slug.replace(/-/g, '_')}`;
}

/**
 * Register one `start_<slug>` tool per definition the backend lists, whose `input` schema is the
 * definition's own input JSON Schema (through zod's `fromJSONSchema`; Baton validates the input
 * again with the schema itself). A schema zod cannot take is skipped (start_run still serves it).
 */
export async function registerDefinitionTools(server: McpServer, backend: BatonBackend): Promise<string[]> {
  const listed = (await backend.listDefinitions()) as { items?: Array<{ slug: string; name: string; description?: string | null }> };
  const names: string[] = [];
  for (const d of listed.items ?? []) {
    const described = (await backend.describeDefinition(d.slug)) as { input?: Record<string, unknown>; version?: number };
    let input: z.ZodType;
    try {
      input = z.fromJSONSchema((described.input ?? {}));
    } catch {
      continue;
    }
    const name = startToolName(d.slug);
    server.registerTool(
      name,
      {
        title: `Start ${d.name}`,
        description: `Start a run of ${d.slug} (version ${described.version ?? 'latest'})${d.description ? `: ${d.description}` : ''}. \`input\` is the definition's input schema; \`waitSeconds\` as in start_run.`,
        inputSchema: { input, idempotencyKey: z.string().min(1).max(200).optional(), waitSeconds: z.number().min(0).max(MAX_WAIT_SECONDS).optional() },
      },
      (args, extra) => tool(() => startAndWait(server, backend, { definition: d.slug, ...args }, extra.requestId)),
    );
    names.push(name);
  }
  return names;
}

/** The server's name and version as announced to clients. */
export const MCP_SERVER_INFO = { name: 'baton', version: '0.1.0' } as const;

/** Build an MCP server whose tools act through `backend`. */
export function createMcpServer(backend: BatonBackend): McpServer {
  const server = new McpServer(MCP_SERVER_INFO, { capabilities: { tools: {}, resources: {} } });

  server.registerTool(
    'list_definitions',
    { title: 'List definitions', description: 'The orchestrations (definitions) this key may run: slug, latest version, name, description.', inputSchema: {} },
    () => tool(() => backend.listDefinitions()),
  );

  server.registerTool(
    'describe_definition',
    {
      title: 'Describe a definition',
      description: "One definition version (latest unless `version`): its steps and its `input` JSON Schema — the schema start_run's `input` must match.",
      inputSchema: { slug: z.string().min(1), version: z.number().int().positive().optional() },
    },
    ({ slug, version }) => tool(() => backend.describeDefinition(slug, version)),
  );

  server.registerTool(
    'start_run',
    {
      title: 'Start a run',
      description:
        "Start a run of a definition. `input` is validated against the definition's input JSON Schema (see describe_definition); a mismatch is an error naming the field. With `waitSeconds`, waits for the run to end or reach a checkpoint: the checkpoint is asked through elicitation when the client supports it, otherwise returned as `pendingApproval` (decide it with decide_approval).",
      inputSchema: {
        definition: z.string().min(1),
        version: z.number().int().positive().optional(),
        input: z.record(z.string(), z.unknown()).default({}),
        idempotencyKey: z.string().min(1).max(200).optional(),
        waitSeconds: z.number().min(0).max(MAX_WAIT_SECONDS).optional(),
      },
    },
    (args, extra) => tool(() => startAndWait(server, backend, args, extra.requestId)),
  );

  server.registerTool(
    'get_run',
    { title: 'Get a run', description: 'A run with its steps (status, output, error), approvals and output.', inputSchema: { id: z.string().min(1) } },
    ({ id }) => tool(() => backend.getRun(id)),
  );

  server.registerTool(
    'list_approvals',
    {
      title: 'List approvals',
      description: 'The approval inbox, newest first (default: pending).',
      inputSchema: { status: z.enum(APPROVAL_STATUSES).default('pending') },
    },
    ({ status }) => tool(() => backend.listApprovals(status)),
  );

  server.registerTool(
    'decide_approval',
    {
      title: 'Decide an approval',
      description: 'Answer a checkpoint: continue (optionally with `input` matching its modify schema), retry or abort, as the approvals API rules (approver roles, quorum, self-approval).',
      inputSchema: {
        approvalId: z.string().min(1),
        decision: z.enum(['continue', 'retry', 'abort']),
        input: z.unknown().optional(),
        comment: z.string().max(4000).optional(),
      },
    },
    ({ approvalId, decision, input, comment }) =>
      tool(() => backend.decideApproval(approvalId, { decision, ...(input === undefined ? {} : { input }), ...(comment === undefined ? {} : { comment }) })),
  );

  server.registerTool(
    'cancel_run',
    { title: 'Cancel a run', description: 'Cancel a queued or running run (compensations run first).', inputSchema: { id: z.string().min(1), reason: z.string().max(1000).optional() } },
    ({ id, reason }) => tool(() => backend.cancelRun(id, reason)),
  );

  server.registerResource(
    'run-manifest',
    new ResourceTemplate('baton://runs/{id}/manifest', { list: undefined }),
    { title: 'Run manifest', description: 'The audit/replay record of a run (GET /v1/runs/:id/manifest).', mimeType: 'application/json' },
    async (uri, variables) => {
      const id = String(Array.isArray(variables['id']) ? variables['id'][0] : variables['id']);
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(await backend.getManifest(id), null, 2) }] };
    },
  );

  return server;
}
