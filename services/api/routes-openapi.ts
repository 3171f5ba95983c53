/**
 * `GET /openapi.json` (the generated OpenAPI 3.1 document, `openapi.ts`) and `GET /docs`, a
 * reference page rendered by Swagger UI from the `swagger-ui-dist` package's own files (served
 * from node_modules; no CDN).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import express, { Router } from 'express';
import { z } from 'zod';
import { projectRoot } from '../../lib/index.js';
import type { EngineDeps } from '../engine/index.js';
import { buildOpenApiDocument, documentRoute } from './openapi.js';

/** Baton's package version (the document's `info.version`). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** The reference page: Swagger UI reading `/openapi.json`. */
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Baton API reference</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="reference"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

/** Kept out of the HTML so a strict `script-src 'self'` policy would still allow it. */
const INIT_JS = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#reference', deepLinking: true });\n`;

export function openApiRouter(deps: EngineDeps): Router {
  const router = Router();
  const assets = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const version = packageVersion();

  documentRoute({
    method: 'get',
    path: '/openapi.json',
    summary: 'This OpenAPI document',
    tags: ['operations'],
    auth: 'none',
    responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
  });
  router.get('/openapi.json', (_req, res) => {
    res.json(buildOpenApiDocument({ serverUrl: deps.config.http.publicUrl, version }));
  });

  documentRoute({
    method: 'get',
    path: '/docs',
    summary: 'API reference page (HTML)',
    tags: ['operations'],
    auth: 'none',
    responses: { 200: { description: 'Swagger UI over /openapi.json', contentType: 'text/html', schema: z.string() } },
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_HTML);
  });
  documentRoute({
    method: 'get',
    path: '/docs/init.js',
    summary: 'Script of the reference page',
    tags: ['operations'],
    auth: 'none',
    responses: { 200: { description: 'JavaScript', contentType: 'text/javascript', schema: z.string() } },
  });
  router.get('/docs/init.js', (_req, res) => {
    res.type('js').send(INIT_JS);
  });
  documentRoute({
    method: 'get',
    path: '/docs/assets/:file',
    summary: 'Swagger UI files of the reference page',
    tags: ['operations'],
    auth: 'none',
    responses: { 200: { description: 'A file of swagger-ui-dist', contentType: 'application/octet-stream', schema: z.string() }, 404: { description: 'No such file' } },
  });
  router.use('/docs/assets', express.static(assets, { index: false, maxAge: '1h' }));
  return router;
}
