/**
 * A run's assets and deliverables through HTTP, against the real Postgres: stored by the store
 * functions (as function steps will), read through the routes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { OutputTooLargeError, ValidationError } from '../lib/index.js';
import { createDeliverable, saveAsset, type AssetSummary, type DeliverableView } from '../services/store/index.js';
import { api, startStack, storeDefinition, type Stack } from './support/stack.js';
import { otherOrganization } from './support/organizations.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

/** The store's shapes as JSON (dates as ISO strings). */
type AssetItem = Omit<AssetSummary, 'createdAt'> & { createdAt: string };
type DeliverableItem = Omit<DeliverableView, 'createdAt'> & { createdAt: string };

describe('run assets and deliverables API', function () {
  let stack: Stack;
  let runId: string;
  let otherRunId: string;
  const png = randomBytes(2048);

  /** Start a run of a one-step definition (no workers: it just has to exist). */
  async function startRun(): Promise<string> {
    const slug = uniqueSlug('assets');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: Assets
input: { type: object }
steps:
  - id: draw
    agent: test-sleep
    with: { label: "${slug}", delayMs: 1 }
`,
      [sleepAgent],
    );
    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    expect(started.status).to.equal(202);
    return started.body.id;
  }

  before(async function () {
    stack = await startStack({ workers: false, agents: [sleepAgent] });
    runId = await startRun();
    otherRunId = await startRun();
  });
  after(async function () {
    await stack.close();
  });

  const origin = () => ({ organizationId: stack.organizationId, runId, stepId: 'draw', attempt: 1 });

  it('saves assets, lists their metadata and serves their bytes with ETag revalidation', async function () {
    const saved = await saveAsset(stack.deps.database.db, { ...origin(), name: 'cat ünïcode "1".png', mimeType: 'image/png', data: png }, 1 << 20);
    expect(saved).to.deep.include({ bytes: png.length, sha256: createHash('sha256').update(png).digest('hex') });

    const listed = await api<{ items: AssetItem[] }>(stack, 'GET', `/v1/runs/${runId}/assets`);
    expect(listed.status).to.equal(200);
    expect(listed.body.items).to.have.length(1);
    expect(listed.body.items[0]).to.deep.include({ id: saved.id, stepId: 'draw', attempt: 1, mimeType: 'image/png', bytes: png.length, sha256: saved.sha256 });
    expect(Object.keys(listed.body.items[0] ?? {}).sort()).to.deep.equal(['attempt', 'bytes', 'createdAt', 'id', 'mimeType', 'name', 'sha256', 'stepId']);

    const url = `${stack.baseUrl}/v1/runs/${runId}/assets/${saved.id}`;
    const auth = { authorization: `Bearer ${stack.apiKey}` };
    const download = await fetch(url, { headers: auth });
    expect(download.status).to.equal(200);
    expect(download.headers.get('content-type')).to.equal('image/png');
    expect(download.headers.get('content-length')).to.equal(String(png.length));
    expect(download.headers.get('etag')).to.equal(`"${saved.sha256}"`);
    expect(download.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(download.headers.get('content-disposition')).to.equal(
      `inline; filename="cat _n_code _1_.png"; filename*=UTF-8''cat%20%C3%BCn%C3%AFcode%20%221%22.png`,
    );
    expect(Buffer.from(await download.arrayBuffer()).equals(png)).to.equal(true);

    for (const tag of [`"${saved.sha256}"`, `W/"${saved.sha256}"`, `"other", "${saved.sha256}"`, '*']) {
      const cached = await fetch(url, { headers: { ...auth, 'if-none-match': tag } });
      expect(cached.status, tag).to.equal(304);
      expect(cached.headers.get('etag')).to.equal(`"${saved.sha256}"`);
    }
    expect((await fetch(url, { headers: { ...auth, 'if-none-match': '"stale"' } })).status).to.equal(200);
  });

  it('refuses an asset above the limit and bad names or types', async function () {
    const db = stack.deps.database.db;
    const big = saveAsset(db, { ...origin(), name: 'big.bin', mimeType: 'application/octet-stream', data: new Uint8Array(101) }, 100);
    expect(await big.catch((e: unknown) => e)).to.be.instanceOf(OutputTooLargeError);
    const badType = await saveAsset(db, { ...origin(), name: 'x.png', mimeType: 'png', data: png }, 1 << 20).catch((e: unknown) => e);
    expect((badType as ValidationError).field).to.equal('mimeType');
    const badName = await saveAsset(db, { ...origin(), name: 'a\nb', mimeType: 'image/png', data: png }, 1 << 20).catch((e: unknown) => e);
    expect((badName as ValidationError).field).to.equal('name');
  });

  it('creates deliverables over assets of the same run only', async function () {
    const db = stack.deps.database.db;
    const asset = await saveAsset(db, { ...origin(), name: 'dog.png', mimeType: 'image/png', data: png }, 1 << 20);
    const { id } = await createDeliverable(db, { ...origin(), title: 'Images', kind: 'image-set', content: { prompt: 'a dog' }, assetIds: [asset.id] });
    const foreign = await saveAsset(db, { ...origin(), runId: otherRunId, name: 'f.png', mimeType: 'image/png', data: png }, 1 << 20);
    for (const assetIds of [[foreign.id], ['not-a-uuid'], [asset.id, '00000000-0000-4000-8000-000000000000']]) {
      const err = await createDeliverable(db, { ...origin(), title: 'Bad', kind: 'image-set', assetIds }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).field).to.equal('assetIds');
    }
    const listed = await api<{ items: DeliverableItem[] }>(stack, 'GET', `/v1/runs/${runId}/deliverables`);
    expect(listed.status).to.equal(200);
    expect(listed.body.items).to.have.length(1);
    expect(listed.body.items[0]).to.deep.include({ id, stepId: 'draw', title: 'Images', kind: 'image-set', content: { prompt: 'a dog' }, assetIds: [asset.id] });
    expect((await api<{ items: DeliverableItem[] }>(stack, 'GET', `/v1/runs/${otherRunId}/deliverables`)).body.items).to.deep.equal([]);
  });

  it("answers 404 for another organization's run, an unknown asset and malformed ids", async function () {
    const other = await otherOrganization(stack, ['runs:read']);
    const [asset] = (await api<{ items: AssetItem[] }>(stack, 'GET', `/v1/runs/${runId}/assets`)).body.items;
    expect((await api(other.client, 'GET', `/v1/runs/${runId}/assets`)).status).to.equal(404);
    expect((await api(other.client, 'GET', `/v1/runs/${runId}/deliverables`)).status).to.equal(404);
    const stolen = await fetch(`${stack.baseUrl}/v1/runs/${runId}/assets/${asset?.id}`, { headers: { authorization: `Bearer ${other.client.apiKey}` } });
    expect(stolen.status).to.equal(404);
    expect((await api(stack, 'GET', `/v1/runs/${otherRunId}/assets/${asset?.id}`)).status, 'asset of another run').to.equal(404);
    expect((await api(stack, 'GET', `/v1/runs/${runId}/assets/00000000-0000-4000-8000-000000000000`)).status).to.equal(404);
    expect((await api(stack, 'GET', `/v1/runs/${runId}/assets/nope`)).status).to.equal(404);
    expect((await api(stack, 'GET', '/v1/runs/nope/assets')).status).to.equal(404);
  });
});
