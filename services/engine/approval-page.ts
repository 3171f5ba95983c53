/**
 * What the approval page of a `decideUrl` shows (issue 9 item 5): the approval its token is for,
 * read with the token alone (no API key), exactly as a decision would check it — signature,
 * expiry, approval and attempt — plus whether the link was already used.
 */
import { eq } from 'drizzle-orm';
import { ForbiddenError, NotFoundError } from '../../lib/index.js';
import { approvalTokens } from '../../db/index.js';
import { tokenKey, verifyDecisionToken } from './approval-tokens.js';
import { approvalSummary, getApproval } from '../store/index.js';
import type { EngineDeps } from './deps.js';

/**
 * The approval behind a decision link.
 * @returns the approval summary, the link's `approver`, and `linkUsed`.
 * @throws {UnauthorizedError} forged or malformed token.
 * @throws {GoneError} the deadline has passed.
 * @throws {ForbiddenError} a token for another approval or an earlier attempt.
 * @throws {NotFoundError} unknown approval.
 */
export async function approvalForToken(deps: EngineDeps, approvalId: string, token: string): Promise<Record<string, unknown>> {
  const claims = await verifyDecisionToken(tokenKey(deps.config.auth.webhookSecret), token);
  if (claims.approvalId !== approvalId) throw new ForbiddenError('this decision link belongs to another approval');
  const approval = await getApproval(deps, approvalId);
  if (!approval) throw new NotFoundError(`approval ${approvalId} not found`);
  if (claims.generation !== approval.generation) throw new ForbiddenError('this decision link is for an earlier request');
  const [link] = await deps.database.db.select({ usedAt: approvalTokens.usedAt }).from(approvalTokens).where(eq(approvalTokens.jti, claims.jti));
  return { ...approvalSummary(approval), approver: claims.approver, linkUsed: Boolean(link?.usedAt) };
}
