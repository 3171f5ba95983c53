/**
 * `a2a` (type `api`): call a remote A2A v1.0 agent with the official client (`@a2a-js/sdk`),
 * and run what the `type: a2a` step means (the shipped `a2a-client` catalog entry).
 *
 * Step input `{agentCardUrl | agentUrl, message: text | data, auth?, timeoutMs?, approvalTimeoutMs?}`:
 * - the agent card is read from `agentCardUrl`, or from `agentUrl` + `/.well-known/agent-card.json`;
 *   the client picks a JSON-RPC or HTTP+JSON interface from its `supportedInterfaces`;
 * - `message` is sent as one text part (a string) or one data part (anything else), with the
 *   message id `<idempotencyKey>.0` (stable across re-deliveries); `auth` (e.g.
 *   `${{ secrets.REMOTE_KEY }}`) is sent as `Authorization: Bearer <auth>`;
 * - every request goes through `ctx.http` (the outbound policy), so sends are blocking (`SendMessage`
 *   returns at a terminal or interrupted state) and a task still `submitted`/`working` is polled
 *   with `GetTask` every second — no SSE stream through the policy;
 * - `TASK_STATE_INPUT_REQUIRED`: a Baton approval is opened (`ctx.approval`: prompt = the remote
 *   status message's text, show = its data parts) and its decision is forwarded as the follow-up
 *   message (same `taskId` / `contextId`) carrying one data part `{decision, input?, comment?}`;
 *   repeated as often as the remote asks;
 * - `TASK_STATE_COMPLETED` → output `{taskId, contextId, state, artifacts: [{artifactId, name, data, text}],
 *   data, text}` (`data`: the first data part of the artifacts, `text`: their text joined);
 *   `FAILED` / `REJECTED` / `CANCELED` / `AUTH_REQUIRED` → `AgentError` with the remote's message.
 */
import { z } from 'zod';
import { TaskState, type Task } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, type Client } from '@a2a-js/sdk/client';
import { AgentError, a2aMessage, dataPart, partsData, partsText, textPart, type OutboundMethod } from '../../lib/index.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { parseInput } from '../validation.js';

/** Default budget of one request to the remote agent (a blocking send waits for it), in milliseconds. */
export const DEFAULT_A2A_TIMEOUT_MS = 300_000;
/** Default deadline of the Baton approval opened for an input-required task (24 h), in milliseconds. */
export const DEFAULT_A2A_APPROVAL_TIMEOUT_MS = 24 * 3600 * 1000;
/** Interval between `GetTask` polls of a task still working, in milliseconds. */
const POLL_MS = 1000;
/** Input-required rounds one step answers at most. */
const MAX_ROUNDS = 20;

const A2aInput = z
  .strictObject({
    agentCardUrl: z.url({ protocol: /^https?$/ }).optional(),
    agentUrl: z.url({ protocol: /^https?$/ }).optional(),
    message: z.unknown().refine((m) => m !== undefined && m !== null, 'message is required'),
    auth: z.string().min(1).optional(),
    timeoutMs: z.number().int().positive().max(3_600_000).default(DEFAULT_A2A_TIMEOUT_MS),
    approvalTimeoutMs: z.number().int().positive().default(DEFAULT_A2A_APPROVAL_TIMEOUT_MS),
  })
  .refine((i) => (i.agentCardUrl === undefined) !== (i.agentUrl === undefined), {
    message: 'give exactly one of agentCardUrl or agentUrl',
    path: ['agentCardUrl'],
  });

/** `fetch` over the outbound policy (`ctx.http`), as the SDK's transports and card resolver take it. */
function outboundFetch(ctx: AgentContext, timeoutMs: number): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const response = await ctx.http({
      method: (init?.method ?? 'GET').toUpperCase() as OutboundMethod,
      url,
      headers,
      ...(typeof init?.body === 'string' ? { body: init.body } : {}),
      timeoutMs,
      signal: init?.signal ?? ctx.signal,
      responseType: 'text',
    });
    const body = response.status === 204 || response.status === 304 ? null : (typeof response.data === 'string' ? response.data : JSON.stringify(response.data ?? ''));
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

async function connect(ctx: AgentContext, input: z.output<typeof A2aInput>): Promise<Client> {
  const fetchImpl = outboundFetch(ctx, input.timeoutMs);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    }),
  );
  try {
    return input.agentCardUrl ? await factory.createFromUrl(input.agentCardUrl, '') : await factory.createFromUrl((input.agentUrl ?? '').replace(/\/?$/, '/'));
  } catch (err) {
    throw new AgentError(`could not read the A2A agent card at ${input.agentCardUrl ?? input.agentUrl}: ${(err as Error).message}`, { cause: err });
  }
}

function stateName(state: TaskState | undefined): string {
  return TaskState[state ?? TaskState.TASK_STATE_UNSPECIFIED] ?? 'TASK_STATE_UNSPECIFIED';
}

function outputOf(task: Task): Record<string, unknown> {
  const artifacts = task.artifacts.map((a) => ({ artifactId: a.artifactId, name: a.name, data: partsData(a.parts)[0] ?? null, text: partsText(a.parts) }));
  return {
    taskId: task.id,
    contextId: task.contextId,
    state: stateName(task.status?.state),
    artifacts,
    data: artifacts.find((a) => a.data !== null)?.data ?? null,
    text: artifacts.map((a) => a.text).filter((t) => t !== '').join('\n'),
  };
}

export const a2aImplementation: AgentImplementation<Record<string, never>> = {
  name: 'a2a',
  type: 'api',
  description: 'Sends a message to a remote A2A v1.0 agent, follows its task, and turns its input-required state into a Baton approval.',
  config: z.strictObject({}),
  async run(raw, ctx) {
    const input = parseInput(A2aInput, raw);
    const client = await connect(ctx, input);
    const options = { signal: ctx.signal, ...(input.auth ? { serviceParameters: { authorization: `Bearer ${input.auth}` } } : {}) };
    const first = typeof input.message === 'string' ? textPart(input.message) : dataPart(input.message);
    let result = await client.sendMessage(
      { tenant: '', message: a2aMessage('user', [first], { messageId: `${ctx.idempotencyKey}.0` }), configuration: undefined, metadata: undefined },
      options,
    );
    for (let round = 0; ; ) {
      if (!('status' in result)) return { message: { text: partsText((result).parts), data: partsData((result).parts)[0] ?? null } };
      let task: Task = result;
      while (task.status?.state === TaskState.TASK_STATE_SUBMITTED || task.status?.state === TaskState.TASK_STATE_WORKING) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (ctx.signal.aborted) throw new AgentError(`stopped following A2A task ${task.id}`);
        task = await client.getTask({ tenant: '', id: task.id, historyLength: 0 }, options);
      }
      const state = task.status?.state;
      if (state === TaskState.TASK_STATE_COMPLETED) return outputOf(task);
      const remoteText = partsText(task.status?.message?.parts);
      if (state !== TaskState.TASK_STATE_INPUT_REQUIRED) {
        throw new AgentError(`remote A2A task ${task.id} ended ${stateName(state)}${remoteText ? `: ${remoteText}` : ''}`);
      }
      if (!ctx.approval) throw new AgentError(`remote A2A task ${task.id} requires input, and this worker cannot open approvals`);
      if (round >= MAX_ROUNDS) throw new AgentError(`remote A2A task ${task.id} asked for input more than ${MAX_ROUNDS} times`);
      const shown = partsData(task.status?.message?.parts);
      const decided = await ctx.approval({
        round,
        prompt: remoteText || `The remote agent's task ${task.id} requires input.`,
        show: shown.length === 0 ? null : shown.length === 1 ? shown[0] : shown,
        decisions: ['continue', 'retry', 'abort'],
        timeoutMs: input.approvalTimeoutMs,
      });
      round += 1;
      const reply = {
        decision: decided.decision,
        ...(decided.data === null ? {} : { input: decided.data }),
        ...(decided.comment === null ? {} : { comment: decided.comment }),
      };
      result = await client.sendMessage(
        {
          tenant: '',
          message: a2aMessage('user', [dataPart(reply)], { taskId: task.id, contextId: task.contextId, messageId: `${ctx.idempotencyKey}.${round}` }),
          configuration: undefined,
          metadata: undefined,
        },
        options,
      );
    }
  },
};
