/**
 * Small builders and readers of A2A v1.0 messages and parts (the `@a2a-js/sdk` types, whose
 * generated interfaces require every field), shared by Baton's A2A server and its `a2a` step.
 */
import { randomUUID } from 'node:crypto';
import { Role, type Artifact, type Message, type Part } from '@a2a-js/sdk';

/** A text part (`text/plain`). */
export function textPart(text: string): Part {
  return { content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' };
}

/** A structured-data part (`application/json`). */
export function dataPart(value: unknown): Part {
  return { content: { $case: 'data', value }, metadata: undefined, filename: '', mediaType: 'application/json' };
}

/**
 * A message with every field the SDK's types require.
 * @param role - `ROLE_USER` for a client's message, `ROLE_AGENT` for a server's.
 */
export function a2aMessage(
  role: 'user' | 'agent',
  parts: Part[],
  ids: { taskId?: string; contextId?: string; messageId?: string } = {},
): Message {
  return {
    messageId: ids.messageId ?? randomUUID(),
    contextId: ids.contextId ?? '',
    taskId: ids.taskId ?? '',
    role: role === 'user' ? Role.ROLE_USER : Role.ROLE_AGENT,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** An artifact with one part per value (`data` parts; strings become text parts). */
export function a2aArtifact(artifactId: string, name: string, description: string, values: unknown[]): Artifact {
  return {
    artifactId,
    name,
    description,
    parts: values.map((v) => (typeof v === 'string' ? textPart(v) : dataPart(v))),
    metadata: undefined,
    extensions: [],
  };
}

/** The text of a message's (or artifact's) text parts, joined by newlines ('' when none). */
export function partsText(parts: readonly Part[] | undefined): string {
  return (parts ?? [])
    .map((p) => (p.content?.$case === 'text' ? p.content.value : undefined))
    .filter((t): t is string => t !== undefined)
    .join('\n');
}

/** The values of the data parts, in order. */
export function partsData(parts: readonly Part[] | undefined): unknown[] {
  return (parts ?? []).flatMap((p) => (p.content?.$case === 'data' ? [p.content.value as unknown] : []));
}
