/** Reading MCP tool results in tests. */
import { expect } from 'chai';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

/** The JSON a tool returned (its one text content); fails the test on an `isError` result. */
export function toolJson<T = Record<string, unknown>>(result: unknown): T {
  const r = result as CallToolResult;
  expect(r.isError, JSON.stringify(r.content)).to.not.equal(true);
  const first = r.content[0];
  if (first?.type !== 'text') throw new Error('expected a text content');
  return JSON.parse(first.text) as T;
}
