/**
 * The agent catalog: one YAML file per named agent version in `agents/catalog/*.yaml`:
 *
 * ```yaml
 * name: postgres-agent          # ^[a-z][a-z0-9-]*$
 * type: tool                    # an agent type
 * version: 1                    # positive integer
 * description: …
 * implementation: sql           # optional: default per type (see defaultImplementation)
 * config: {…}                   # validated by the implementation's config schema
 * env: [PGAPPNAME]              # environment variables the agent may read (ctx.env)
 * secrets: [API_KEY]            # secrets the agent may read (ctx.secrets)
 * ```
 *
 * Problems are reported as `file:line:column: message` in a `DefinitionError` (the format of
 * definition files), all of them in `details.problems`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { HttpConfig } from './api/http.js';
import { defaultImplementation, implementations } from './registry.js';
import { AGENT_TYPES, type AgentSpec } from './types.js';
import {
  parseYamlSource,
  problemsError,
  projectRoot,
  sourceError,
  zodProblems,
  type SourceProblem,
  type YamlSource,
} from '../lib/index.js';

/** Agent names: kebab-case. */
export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9-]*$/;
const VARIABLE_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** The shape of one catalog document. */
export const CatalogEntryDocument = z
  .object({
    name: z.string().regex(AGENT_NAME_PATTERN, { error: 'must be kebab-case (^[a-z][a-z0-9-]*$)' }),
    type: z.enum(AGENT_TYPES),
    version: z.number().int().positive().max(2_147_483_647),
    description: z.string().min(1).max(2000),
    implementation: z.string().min(1).optional(),
    config: z.record(z.string(), z.unknown()).default({}),
    env: z.array(z.string().regex(VARIABLE_NAME, { error: 'must be an environment variable name' })).max(100).default([]),
    secrets: z.array(z.string().regex(VARIABLE_NAME, { error: 'must be a secret name (^[A-Z_][A-Z0-9_]*$)' })).max(100).default([]),
  })
  .strict();

/** The default catalog directory: `<projectRoot>/agents/catalog`. */
export function defaultCatalogDir(): string {
  return join(projectRoot(), 'agents', 'catalog');
}

/** Env variables and secrets an `http` config reads must be declared by the entry. */
function httpDeclarations(config: HttpConfig, env: readonly string[], secrets: readonly string[]): SourceProblem[] {
  const problems: SourceProblem[] = [];
  if (config.urlEnv !== undefined && !env.includes(config.urlEnv)) {
    problems.push({ path: ['config', 'urlEnv'], message: `config.urlEnv: ${config.urlEnv} is not listed in env` });
  }
  if (config.urlSecret !== undefined && !secrets.includes(config.urlSecret)) {
    problems.push({ path: ['config', 'urlSecret'], message: `config.urlSecret: ${config.urlSecret} is not listed in secrets` });
  }
  for (const [header, secret] of Object.entries(config.headersFromSecrets ?? {})) {
    if (!secrets.includes(secret)) {
      problems.push({ path: ['config', 'headersFromSecrets', header], message: `config.headersFromSecrets.${header}: ${secret} is not listed in secrets` });
    }
  }
  return problems;
}

/** Validate a plain value as a catalog entry; problems carry paths. */
function validateEntry(value: unknown): { ok: true; spec: AgentSpec } | { ok: false; problems: SourceProblem[] } {
  const parsed = CatalogEntryDocument.safeParse(value);
  if (!parsed.success) return { ok: false, problems: zodProblems(parsed.error.issues, value) };
  const doc = parsed.data;
  const implementationName = doc.implementation ?? defaultImplementation(doc.type);
  const implementation = implementations.get(implementationName);
  if (!implementation) {
    const known = [...implementations.values()].filter((i) => i.type === doc.type).map((i) => i.name);
    return {
      ok: false,
      problems: [
        {
          path: ['implementation'],
          message: `implementation: unknown implementation "${implementationName}" for type ${doc.type} (known: ${known.join(', ') || 'none'})`,
        },
      ],
    };
  }
  if (implementation.type !== doc.type) {
    return {
      ok: false,
      problems: [
        {
          path: ['implementation'],
          message: `implementation: ${implementationName} is a ${implementation.type} implementation, but the agent's type is ${doc.type}`,
        },
      ],
    };
  }
  const config = implementation.config.safeParse(doc.config);
  if (!config.success) return { ok: false, problems: zodProblems(config.error.issues, doc.config, ['config']) };
  if (implementationName === 'http') {
    const problems = httpDeclarations(config.data as HttpConfig, doc.env, doc.secrets);
    if (problems.length > 0) return { ok: false, problems };
  }
  return {
    ok: true,
    spec: {
      name: doc.name,
      type: doc.type,
      version: doc.version,
      description: doc.description,
      implementation: implementationName,
      config: config.data as Record<string, unknown>,
      env: doc.env,
      secrets: doc.secrets,
    },
  };
}

function parseWithSource(source: YamlSource): AgentSpec {
  const result = validateEntry(source.value);
  if (!result.ok) throw sourceError(source.file, source, result.problems);
  return result.spec;
}

/**
 * Parse and validate one catalog entry.
 * @param source - the YAML text (one document).
 * @param file - path or label for messages.
 * @returns the {@link AgentSpec}: `implementation` defaulted per type, `config` as parsed by the
 *   implementation's schema (defaults applied), `env` and `secrets` defaulted to `[]`.
 * @throws {DefinitionError} `file:line:column: <rule>` (YAML syntax, unknown key, missing key,
 *   unknown type or implementation, an implementation of another type, invalid config, an env
 *   variable or secret the config uses but the entry does not declare); `details.problems` lists
 *   every problem.
 */
export function parseAgentSource(source: string, file: string): AgentSpec {
  return parseWithSource(parseYamlSource(source, file));
}

/**
 * Validate a catalog entry given as JSON (e.g. the body of `POST /v1/agents`). Same rules as
 * {@link parseAgentSource}.
 * @throws {DefinitionError} `label: <path>: <rule>` (no positions).
 */
export function parseAgentObject(value: unknown, label: string): AgentSpec {
  const result = validateEntry(value);
  if (!result.ok) throw sourceError(label, undefined, result.problems);
  return result.spec;
}

/**
 * Load every `*.yaml` / `*.yml` file directly in `dir` (not subfolders such as `__drafts__`, not
 * dot-files), in file-name order.
 * @param dir - default {@link defaultCatalogDir}.
 * @returns the entries in file-name order.
 * @throws {DefinitionError} for the first invalid file, or when two files declare the same name
 *   and version (positioned at the second file's `name`, naming both files).
 */
export async function loadAgentCatalog(dir: string = defaultCatalogDir()): Promise<AgentSpec[]> {
  return (await loadAgentCatalogEntries(dir)).map((entry) => entry.spec);
}

/** One catalog file: the parsed entry, its source text and its path. */
export interface CatalogEntry {
  spec: AgentSpec;
  source: string;
  file: string;
}

/**
 * {@link loadAgentCatalog} with each entry's source text and file (what seeding stores).
 * @throws {DefinitionError} as {@link loadAgentCatalog}.
 */
export async function loadAgentCatalogEntries(dir: string = defaultCatalogDir()): Promise<CatalogEntry[]> {
  const names = (await readdir(dir)).filter((name) => /\.ya?ml$/i.test(name) && !name.startsWith('.')).sort();
  const entries: CatalogEntry[] = [];
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    if (!(await stat(file)).isFile()) continue;
    const text = await readFile(file, 'utf8');
    const source = parseYamlSource(text, file);
    const spec = parseWithSource(source);
    const key = `${spec.name}@${spec.version}`;
    const other = seen.get(key);
    if (other !== undefined) {
      throw problemsError([
        { file, ...source.positionOf(['name']), path: 'name', message: `duplicate agent ${spec.name} version ${spec.version} (also in ${other})` },
      ]);
    }
    seen.set(key, file);
    entries.push({ spec, source: text, file });
  }
  return entries;
}

/**
 * The newest version of each agent.
 * @returns name → the entry with the highest version.
 */
export function latestVersions(specs: readonly AgentSpec[]): ReadonlyMap<string, AgentSpec> {
  const latest = new Map<string, AgentSpec>();
  for (const spec of specs) {
    const current = latest.get(spec.name);
    if (!current || spec.version > current.version) latest.set(spec.name, spec);
  }
  return latest;
}
