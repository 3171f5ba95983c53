/**
 * Sensitive values in a run (SPEC S4, issue 7 item 6): organization secrets a step's `with:`
 * names as `${{ secrets.NAME }}`, and run-input fields whose JSON Schema says `writeOnly: true`
 * or `format: password`.
 *
 * They never reach storage in clear: the run's `input` column holds `"[redacted]"` in their place
 * and the real values are sealed in `runs.sealed_input` (AES-256-GCM, AAD `run-input:<runId>`);
 * a step's resolved input is stored redacted by value. Only the attempt that uses them gets the
 * real values, in memory, together with the list of values its worker redacts from the output,
 * error, logs and BullMQ failure reason before they leave the process.
 */
import {
  MissingSecretError,
  openSecret,
  registerSensitiveValues,
  restoreSensitiveInput,
  sealSecret,
  splitSensitiveInput,
  type SealedField,
} from '../../lib/index.js';
import { referencedSecrets } from '../../definitions/index.js';
import { loadSecrets } from '../store/index.js';
import type { EngineDeps } from './deps.js';

/** AAD binding a run's sealed input to that run (a sealed blob cannot be moved to another run). */
const inputAad = (runId: string): string => `run-input:${runId}`;

/** Text form of a sensitive value, as redaction matches it. */
function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? '';
}

/**
 * Split a run input into what is stored in clear and what is sealed.
 * @param schema - the definition's input JSON Schema.
 * @returns `input` with sensitive fields as `"[redacted]"`, and the sealed rest (or `null`).
 */
export function sealRunInput(deps: EngineDeps, runId: string, schema: Record<string, unknown>, input: unknown): { input: unknown; sealedInput: string | null } {
  const { redacted, sealed } = splitSensitiveInput(schema, input);
  if (sealed.length === 0) return { input, sealedInput: null };
  return { input: redacted, sealedInput: sealSecret(deps.config.secrets.key, JSON.stringify(sealed), inputAad(runId)) };
}

/**
 * The real run input (for resolving a step's input) and its sensitive values.
 * The values are registered with the logger's redaction, so no log line carries them.
 */
export function unsealRunInput(deps: EngineDeps, run: { id: string; input: unknown; sealedInput: string | null }): { input: unknown; values: string[] } {
  if (run.sealedInput === null) return { input: run.input, values: [] };
  const sealed = JSON.parse(openSecret(deps.config.secrets.key, run.sealedInput, inputAad(run.id))) as SealedField[];
  const values = sealed.map((field) => asText(field.value));
  registerSensitiveValues(values);
  return { input: restoreSensitiveInput(run.input, sealed), values };
}

/**
 * The secrets a mapping names (`${{ secrets.NAME }}`), decrypted.
 * @param db - where to read them: the caller's transaction when it holds one (`scope.tx`), never
 *   a second pool connection meanwhile — transactions that each wait for a second connection
 *   while holding their first deadlock the pool, with nothing in Postgres to break it.
 * @throws {MissingSecretError} naming the first secret the organization has not stored.
 */
export async function secretsForMapping(
  deps: EngineDeps,
  db: Parameters<typeof loadSecrets>[0],
  organizationId: string,
  mapping: unknown,
): Promise<Record<string, string>> {
  const names = referencedSecrets(mapping);
  if (names.length === 0) return {};
  const found = await loadSecrets(db, deps.config.secrets.key, organizationId, names);
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = found[name];
    if (value === undefined) throw new MissingSecretError(`secret ${name} is not set (POST /v1/secrets)`, { field: `secrets.${name}` });
    out[name] = value;
  }
  registerSensitiveValues(Object.values(out));
  return out;
}
