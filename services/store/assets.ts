/**
 * Assets (binary results of steps, `ctx.assets.saveBuffer`) and deliverables (results meant for
 * people, `ctx.deliverables.create`), stored in Postgres with the run they belong to.
 */
import { createHash } from 'node:crypto';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { NotFoundError, OutputTooLargeError, ValidationError } from '../../lib/index.js';
import { assets, deliverables, runs, type Db } from '../../db/index.js';

/** Longest asset name, deliverable title or kind, in characters. */
export const ASSET_NAME_MAX_CHARS = 255;
/** A MIME type `type/subtype` with optional parameters (RFC 2045 §5.1 tokens). */
const MIME_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(?:\s*;\s*[a-z0-9!#$&^_.+-]+=(?:[a-z0-9!#$&^_.+-]+|"[^"\\\r\n]*"))*$/i;
/** C0 controls and DEL, refused in names and titles (they break headers and terminals). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Where an asset or deliverable comes from. */
export interface StepOrigin {
  organizationId: string;
  runId: string;
  stepId: string;
  /** The step attempt that produced it (1-based). */
  attempt: number;
}

/** An asset to save. */
export interface NewAsset extends StepOrigin {
  /** File name shown and offered on download, e.g. `cat-1.png`. */
  name: string;
  /** e.g. `image/png`. */
  mimeType: string;
  data: Uint8Array;
}

/** What saving an asset returns (also what `ctx.assets.saveBuffer` resolves to). */
export interface SavedAsset {
  id: string;
  /** Size of `data`, in bytes. */
  bytes: number;
  /** Hex SHA-256 of `data`. */
  sha256: string;
}

/** An asset's metadata (no bytes). */
export interface AssetSummary {
  id: string;
  stepId: string;
  attempt: number;
  name: string;
  mimeType: string;
  bytes: number;
  sha256: string;
  createdAt: Date;
}

/** An asset with its bytes. */
export interface AssetWithData extends AssetSummary {
  data: Buffer;
}

/** A deliverable to create. */
export interface NewDeliverable extends StepOrigin {
  title: string;
  /** Free-form kind, e.g. `report`, `image-set`, `campaign`. */
  kind: string;
  /** Any JSON value. */
  content?: unknown;
  /** Assets of the same run it presents. */
  assetIds?: readonly string[];
}

/** A deliverable as listed. */
export interface DeliverableView {
  id: string;
  stepId: string;
  title: string;
  kind: string;
  content: unknown;
  assetIds: string[];
  createdAt: Date;
}

/** A UUID in its canonical text form (RFC 9562 §4). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkText(value: string, field: string): void {
  if (value.trim().length === 0 || value.length > ASSET_NAME_MAX_CHARS || CONTROL.test(value)) {
    throw new ValidationError(`${field}: expected 1 to ${ASSET_NAME_MAX_CHARS} characters without control characters`, { field });
  }
}

/**
 * Save an asset.
 *
 * @param maxBytes - largest `data` accepted, in bytes (`config.steps.assetMaxBytes`).
 * @throws {OutputTooLargeError} when `data` is larger than `maxBytes`.
 * @throws {ValidationError} field `name` or `mimeType`.
 */
export async function saveAsset(db: Db, asset: NewAsset, maxBytes: number): Promise<SavedAsset> {
  checkText(asset.name, 'name');
  if (!MIME_TYPE.test(asset.mimeType) || asset.mimeType.length > ASSET_NAME_MAX_CHARS) {
    throw new ValidationError(`mimeType: expected a MIME type such as image/png, got "${asset.mimeType.slice(0, 100)}"`, {
      field: 'mimeType',
    });
  }
  const bytes = asset.data.byteLength;
  if (bytes > maxBytes) {
    throw new OutputTooLargeError(`asset ${asset.name} is ${bytes} bytes; the limit (ASSET_MAX_BYTES) is ${maxBytes}`, {
      details: { bytes, maxBytes },
    });
  }
  const data = Buffer.from(asset.data.buffer, asset.data.byteOffset, asset.data.byteLength);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const [row] = await db
    .insert(assets)
    .values({
      organizationId: asset.organizationId,
      runId: asset.runId,
      stepId: asset.stepId,
      attempt: asset.attempt,
      name: asset.name,
      mimeType: asset.mimeType,
      bytes,
      sha256,
      data,
    })
    .returning({ id: assets.id });
  if (!row) throw new Error(`asset ${asset.name} was not stored`);
  return { id: row.id, bytes, sha256 };
}

/**
 * Create a deliverable.
 * @throws {ValidationError} field `title` or `kind`; field `assetIds` when an id is not an asset
 *   of the same run.
 */
export async function createDeliverable(db: Db, deliverable: NewDeliverable): Promise<{ id: string }> {
  checkText(deliverable.title, 'title');
  checkText(deliverable.kind, 'kind');
  const assetIds = [...new Set(deliverable.assetIds ?? [])];
  const wellFormed = assetIds.filter((id) => UUID_PATTERN.test(id));
  const found =
    wellFormed.length === 0
      ? []
      : await db
          .select({ id: assets.id })
          .from(assets)
          .where(
            and(
              eq(assets.organizationId, deliverable.organizationId),
              eq(assets.runId, deliverable.runId),
              inArray(assets.id, wellFormed),
            ),
          );
  const known = new Set(found.map((r) => r.id.toLowerCase()));
  const foreign = assetIds.filter((id) => !known.has(id.toLowerCase()));
  if (foreign.length > 0) {
    throw new ValidationError(`assetIds: not assets of run ${deliverable.runId}: ${foreign.slice(0, 5).join(', ')}`, { field: 'assetIds' });
  }
  const [row] = await db
    .insert(deliverables)
    .values({
      organizationId: deliverable.organizationId,
      runId: deliverable.runId,
      stepId: deliverable.stepId,
      attempt: deliverable.attempt,
      title: deliverable.title,
      kind: deliverable.kind,
      content: deliverable.content ?? null,
      assetIds,
    })
    .returning({ id: deliverables.id });
  if (!row) throw new Error(`deliverable ${deliverable.title} was not stored`);
  return row;
}

/** @throws {NotFoundError} when the run is not the organization's. */
async function requireRun(db: Db, organizationId: string, runId: string): Promise<void> {
  const [row] = UUID_PATTERN.test(runId)
    ? await db
        .select({ id: runs.id })
        .from(runs)
        .where(and(eq(runs.id, runId), eq(runs.organizationId, organizationId)))
    : [];
  if (!row) throw new NotFoundError(`run ${runId} not found`);
}

const summaryColumns = {
  id: assets.id,
  stepId: assets.stepId,
  attempt: assets.attempt,
  name: assets.name,
  mimeType: assets.mimeType,
  bytes: assets.bytes,
  sha256: assets.sha256,
  createdAt: assets.createdAt,
};

/**
 * A run's assets, oldest first, without their bytes.
 * @throws {NotFoundError} when the run is not the organization's.
 */
export async function listAssets(db: Db, organizationId: string, runId: string): Promise<AssetSummary[]> {
  await requireRun(db, organizationId, runId);
  return db
    .select(summaryColumns)
    .from(assets)
    .where(and(eq(assets.organizationId, organizationId), eq(assets.runId, runId)))
    .orderBy(asc(assets.createdAt), asc(assets.id));
}

/**
 * One asset with its bytes.
 * @throws {NotFoundError} when the run is not the organization's or has no such asset.
 */
export async function getAsset(db: Db, organizationId: string, runId: string, assetId: string): Promise<AssetWithData> {
  const [row] =
    UUID_PATTERN.test(runId) && UUID_PATTERN.test(assetId)
      ? await db
          .select({ ...summaryColumns, data: assets.data })
          .from(assets)
          .where(and(eq(assets.id, assetId), eq(assets.organizationId, organizationId), eq(assets.runId, runId)))
      : [];
  if (!row) throw new NotFoundError(`asset ${assetId} of run ${runId} not found`);
  return row;
}

/**
 * A run's deliverables, oldest first.
 * @throws {NotFoundError} when the run is not the organization's.
 */
export async function listDeliverables(db: Db, organizationId: string, runId: string): Promise<DeliverableView[]> {
  await requireRun(db, organizationId, runId);
  return db
    .select({
      id: deliverables.id,
      stepId: deliverables.stepId,
      title: deliverables.title,
      kind: deliverables.kind,
      content: deliverables.content,
      assetIds: deliverables.assetIds,
      createdAt: deliverables.createdAt,
    })
    .from(deliverables)
    .where(and(eq(deliverables.organizationId, organizationId), eq(deliverables.runId, runId)))
    .orderBy(asc(deliverables.createdAt), asc(deliverables.id));
}
