/**
 * A run's assets and deliverables: `GET /v1/runs/:id/assets` (metadata),
 * `GET /v1/runs/:id/assets/:assetId` (the bytes, with a strong `ETag` and `If-None-Match`
 * revalidation, RFC 9110 §8.8.3 and §13.1.2), `GET /v1/runs/:id/deliverables`.
 */
import { Router, type Request } from 'express';
import { NotFoundError } from '../../lib/index.js';
import { UUID_PATTERN, getAsset, listAssets, listDeliverables } from '../store/index.js';
import type { EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { runIdParam } from './routes-runs.js';
import { documentRoute, ItemsOf, UuidParam } from './openapi.js';
import { AssetSummary, DeliverableView } from './openapi-schemas.js';
import { z } from 'zod';

function assetIdParam(req: Request): string {
  const id = String(req.params.assetId ?? '');
  if (!UUID_PATTERN.test(id)) throw new NotFoundError(`asset ${id} not found`);
  return id;
}

/**
 * `Content-Disposition: inline` with the file name (RFC 6266): an ASCII `filename` fallback and
 * the exact name as `filename*` in UTF-8 percent-encoding (RFC 8187).
 */
export function inlineDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `inline; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/**
 * Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110 §13.1.2 prescribes for
 * this header): `*`, or any listed tag equal to it with or without `W/`.
 */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

export function assetsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const db = deps.database.db;

  documentRoute({ method: 'get', path: '/v1/runs/:id/assets', summary: "A run's assets (metadata)", tags: ['assets'], scope: 'runs:read', params: z.object({ id: UuidParam }), responses: { 200: { description: 'Assets', schema: ItemsOf(AssetSummary) }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id/assets', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listAssets(db, principalOf(req).organizationId, runIdParam(req)) });
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id/assets/:assetId', summary: "An asset's bytes", tags: ['assets'], scope: 'runs:read', params: z.object({ id: UuidParam, assetId: UuidParam }), headers: z.object({ 'if-none-match': z.string().optional() }), responses: { 200: { description: 'The bytes with their Content-Type', contentType: 'application/octet-stream', schema: z.string() }, 304: { description: 'Not modified' }, 404: { description: 'No such run or asset' } } });
  router.get('/v1/runs/:id/assets/:assetId', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const asset = await getAsset(db, principalOf(req).organizationId, runIdParam(req), assetIdParam(req));
    const etag = `"${asset.sha256}"`;
    res.set({
      ETag: etag,
      'Cache-Control': 'private, no-cache',
      // Stored types come from step code: never sniffed or run as a page on the API's origin.
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "default-src 'none'; sandbox",
    });
    if (noneMatch(req.get('if-none-match'), etag)) {
      res.status(304).end();
      return;
    }
    res.set({
      'Content-Type': asset.mimeType,
      'Content-Length': String(asset.bytes),
      'Content-Disposition': inlineDisposition(asset.name),
    });
    res.status(200).end(asset.data);
  });

  documentRoute({ method: 'get', path: '/v1/runs/:id/deliverables', summary: "A run's deliverables", tags: ['assets'], scope: 'runs:read', params: z.object({ id: UuidParam }), responses: { 200: { description: 'Deliverables', schema: ItemsOf(DeliverableView) }, 404: { description: 'No such run' } } });
  router.get('/v1/runs/:id/deliverables', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listDeliverables(db, principalOf(req).organizationId, runIdParam(req)) });
  });

  return router;
}
