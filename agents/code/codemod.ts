/**
 * `codemod` (type `function`): applies one codemod step module of the learning library
 * (`rename-symbol@1`, `require-to-import@1`, …) to a repository in the function runtime and
 * returns its change with a unified diff, saved as a run asset.
 *
 * Input: `{repo: {files: {path: text}}, module: 'name@version' | null, options?, goal?, notes?,
 * reason?}`; `module: null` (a goal the planner could not plan) changes nothing and returns its
 * `reason` as `skipped`.
 * The module is called as every codemod is, `main({files, options}, ctx)` — `{files, options}`
 * checked first against the module's input JSON Schema — and must return
 * `{files, changed}` (the new texts of what it changed); anything else it returns is kept as
 * `report`. Output: `{goal, module, options, notes, changed, files, diff, diffAssetId, report}`
 * (`diffAssetId` is `null` when nothing changed).
 */
import { z } from 'zod';
import { AgentError, ValidationError } from '../../lib/index.js';
import { loadModules, MODULE_REF_PATTERN, validateModuleInput, type StepModule } from '../modules.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { repoPatch } from './patch.js';

/** The entry's `config:`: the function-runtime limits of one module call. */
export const CodemodConfig = z
  .object({
    limits: z
      .object({
        /** Wall-clock budget of the module call, in milliseconds. */
        timeoutMs: z.number().int().positive().max(3_600_000).default(60_000),
        /** Isolate memory, in MiB (the parser bundle needs about 64). */
        memoryMb: z.number().int().positive().max(4096).default(256),
      })
      .strict()
      .default({ timeoutMs: 60_000, memoryMb: 256 }),
  })
  .strict();
export type CodemodConfig = z.infer<typeof CodemodConfig>;

/** A repository as runs carry it. */
export const RepoInput = z.object({ files: z.record(z.string(), z.string()) }).strict();

const CodemodInput = z
  .object({
    repo: RepoInput,
    module: z.string().regex(MODULE_REF_PATTERN, { error: 'expected a module reference name@version' }).nullable(),
    options: z.record(z.string(), z.unknown()).default({}),
    goal: z.string().optional(),
    notes: z.string().optional(),
    reason: z.string().optional(),
  })
  .strict();

const CodemodResult = z.looseObject({ files: z.record(z.string(), z.string()), changed: z.array(z.string()) });

/** What one build produces. */
export interface CodemodOutput {
  goal: string | null;
  module: string | null;
  /** Why nothing was applied (a goal without a module). */
  skipped: string | null;
  options: Record<string, unknown>;
  notes: string | null;
  /** Paths changed, sorted. */
  changed: string[];
  /** New texts of the changed files. */
  files: Record<string, string>;
  /** Unified diff against the input repository (`''` when nothing changed). */
  diff: string;
  diffAssetId: string | null;
  /** The module's other output fields (e.g. `renamed`, `skipped`). */
  report: Record<string, unknown>;
}

let shipped: Promise<ReadonlyMap<string, StepModule>> | undefined;

/**
 * Check a module call's input (`{files, options}`) against the JSON Schema of the module's
 * `module.yaml` (the shipped modules, loaded once per process), as function steps are checked.
 * A module this process does not ship is left to `ctx.moduleCode`, which names it.
 * @throws {ValidationError} naming the failing field, e.g. `input.options.from`.
 */
export async function checkModuleCall(ref: string, input: unknown): Promise<void> {
  shipped ??= loadModules();
  const module = (await shipped).get(ref);
  if (module) validateModuleInput(module, input);
}

/** Parse `input` or throw a {@link ValidationError} naming the field. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = ['input', ...(issue?.path ?? [])].join('.');
  throw new ValidationError(`${what}: ${field}: ${issue?.message ?? 'invalid'}`, { field });
}

export const codemodImplementation: AgentImplementation<CodemodConfig> = {
  name: 'codemod',
  type: 'function',
  description: 'Applies a codemod step module to a repository in the function runtime; returns the change and its unified diff (an asset).',
  config: CodemodConfig,
  async run(input: unknown, ctx: AgentContext, config: CodemodConfig): Promise<CodemodOutput> {
    const request = parseInput(CodemodInput, input, 'codemod');
    const base = { goal: request.goal ?? null, options: request.options, notes: request.notes ?? null };
    if (request.module === null) {
      return { ...base, module: null, skipped: request.reason ?? 'no module planned', changed: [], files: {}, diff: '', diffAssetId: null, report: {} };
    }
    const call = { files: request.repo.files, options: request.options };
    await checkModuleCall(request.module, call);
    const code = await ctx.moduleCode(request.module);
    const raw = await ctx.functions.run(code, call, config.limits, ctx);
    const result = CodemodResult.safeParse(raw);
    if (!result.success) throw new AgentError(`${request.module} did not return {files, changed} (it is not a codemod)`);
    const { files: returned, changed: _listed, ...report } = result.data;
    const files: Record<string, string> = {};
    for (const path of Object.keys(returned).sort()) {
      if (returned[path] !== request.repo.files[path]) files[path] = returned[path] ?? '';
    }
    const diff = repoPatch(request.repo.files, files);
    const asset =
      diff === ''
        ? null
        : await ctx.assets.saveBuffer(Buffer.from(diff, 'utf8'), { name: `${request.module.replace('@', '-v')}.diff`, mimeType: 'text/x-diff' });
    return {
      ...base,
      module: request.module,
      skipped: null,
      changed: Object.keys(files),
      files,
      diff,
      diffAssetId: asset?.id ?? null,
      report,
    };
  },
};
