/**
 * Checks of a request to start a run, before anything is written: its input is clean and not too
 * large, and an idempotency key is not reused for another request.
 */
import { createHmac } from 'node:crypto';
import {
  IdempotencyKeyReusedError,
  InputTooLargeError,
  ValidationError,
  canonicalJson,
  dottedPath,
  jsonProblem,
  type Config,
} from '../../lib/index.js';

/** What of a start request the idempotency fingerprint covers. */
export interface FingerprintedRequest {
  definition: string;
  version?: number;
  input: unknown;
  webhookUrl?: string;
}

/**
 * Refuse a run input that could not be stored or would stall a worker.
 * @throws {ValidationError} a NUL or lone surrogate in a string or key, or nesting deeper than
 *   64 levels (field: the path, e.g. `input.a.b`).
 * @throws {InputTooLargeError} the input's JSON text is larger than `RUN_INPUT_MAX_BYTES` (field `input`).
 */
export function assertRunInput(config: Pick<Config, 'runInput'>, input: unknown): void {
  const problem = jsonProblem(input);
  if (problem) {
    const field = dottedPath(['input', ...problem.path], 'input');
    throw new ValidationError(`${field}: ${problem.message}`, { field });
  }
  const bytes = Buffer.byteLength(JSON.stringify(input ?? {}), 'utf8');
  if (bytes > config.runInput.maxBytes) {
    throw new InputTooLargeError(`input: ${bytes} bytes of JSON, more than RUN_INPUT_MAX_BYTES (${config.runInput.maxBytes})`, { field: 'input' });
  }
}

/**
 * The fingerprint of a start request: HMAC-SHA256 (keyed with the secrets key, so that a sealed
 * input field cannot be guessed from it) of the canonical JSON of `{definition, version, input,
 * webhookUrl}`, hex. Key order in `input` does not matter.
 */
export function requestFingerprint(config: Pick<Config, 'secrets'>, request: FingerprintedRequest): string {
  const canonical = canonicalJson({
    definition: request.definition,
    version: request.version ?? null,
    input: request.input ?? {},
    webhookUrl: request.webhookUrl ?? null,
  });
  return createHmac('sha256', config.secrets.key).update(canonical).digest('hex');
}

/**
 * The run found under an idempotency key may be returned only for the same request.
 * @param stored - the run's fingerprint (`null`: a child run or a run from before fingerprints; accepted).
 * @throws {IdempotencyKeyReusedError} (422, field `idempotencyKey`) when it was another request.
 */
export function assertSameRequest(stored: string | null, fingerprint: string | null, runId: string): void {
  if (stored === null || fingerprint === null || stored === fingerprint) return;
  throw new IdempotencyKeyReusedError(
    `idempotencyKey: this key already started run ${runId} with another definition, version, input or webhookUrl; use a new key for a new request`,
    { field: 'idempotencyKey', details: { runId } },
  );
}
