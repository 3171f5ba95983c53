/**
 * Named agents through the HTTP API (issue 7 item 1): `GET /v1/agents` lists the seven agents of
 * the original plan with their versions, `GET /v1/agents/:name` every version, and
 * `POST /v1/agents` (admin) adds the next version from a YAML or JSON catalog entry — a wrong
 * version is 409 naming `version`, an invalid entry 400 with `file:line:column` positions and no
 * change. A run keeps the agent versions it pinned when it started; a later run pins the new one.
 *
 * The versioning part works in an organization of its own (seeded with the catalog as `release`
 * seeds one), so the new summarizer versions never reach the other test files' runs.
 */
import { expect } from 'chai';
import { eq } from 'drizzle-orm';
import { loadAgentCatalogEntries } from '../agents/index.js';
import { runs } from '../db/index.js';
import { seedAgents } from '../services/store/index.js';
import { otherOrganization } from './support/organizations.js';
import { api, startStack, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

/** The seven named agents of issue 7. */
const SEVEN = [
  'finance-manager',
  'image-generator-google',
  'image-generator-openai',
  'image-orchestrator',
  'marketing-swarm',
  'postgres-agent',
  'summarizer',
];

interface AgentView {
  name: string;
  type: string;
  version: number;
  description: string;
  config: Record<string, unknown>;
  env: string[];
  secrets: string[];
  checksum: string;
  createdAt: string;
}

interface ErrorBody {
  error: { code: string; message: string; field?: string; details?: { problems?: unknown[] } };
}

interface Client {
  baseUrl: string;
  apiKey: string;
}

/** `POST /v1/agents` with a YAML body. */
async function postYaml<T>(client: Client, yaml: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${client.baseUrl}/v1/agents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/yaml' },
    body: yaml,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Twenty words and no sentence end, so the local summary is exactly the first `maxWords`. */
const TEXT = Array.from({ length: 20 }, (_, i) => `word${i + 1}`).join(' ');
const firstWords = (n: number): string => `${TEXT.split(' ').slice(0, n).join(' ')}…`;

function summarizerYaml(version: number | undefined, maxWords: number | string): string {
  return [
    'name: summarizer',
    'type: context',
    ...(version === undefined ? [] : [`version: ${version}`]),
    `description: Summariser with at most ${maxWords} words.`,
    'implementation: summarizer',
    'config:',
    `  maxWords: ${maxWords}`,
    '',
  ].join('\n');
}

describe('named agents API', function () {
  this.timeout(60_000);
  let stack: Stack;

  before(async function () {
    stack = await startStack();
  });
  after(async function () {
    await stack?.close();
  });

  it('GET /v1/agents lists the seven named agents with their versions', async function () {
    const res = await api<{ items: Array<AgentView & { versions: number }> }>(stack, 'GET', '/v1/agents');
    expect(res.status).to.equal(200);
    const names = res.body.items.map((a) => a.name);
    expect(names).to.include.members(SEVEN);
    expect(names).to.deep.equal([...names].sort());
    for (const name of SEVEN) {
      const agent = res.body.items.find((a) => a.name === name);
      expect(agent?.version, name).to.be.a('number').and.to.be.at.least(1);
      expect(agent?.versions, name).to.be.a('number').and.to.be.at.least(1);
      expect(agent?.description, name).to.be.a('string').and.not.to.equal('');
      expect(agent?.checksum, name).to.match(/^[0-9a-f]{64}$/);
    }
    const types = Object.fromEntries(res.body.items.map((a) => [a.name, a.type]));
    expect(types).to.include({
      summarizer: 'context',
      'marketing-swarm': 'api',
      'postgres-agent': 'tool',
      'image-generator-openai': 'function',
      'image-generator-google': 'function',
      'image-orchestrator': 'orchestrator',
      'finance-manager': 'orchestrator',
    });
    const openai = res.body.items.find((a) => a.name === 'image-generator-openai');
    expect(openai?.env).to.deep.equal(['OPENAI_BASE_URL']);
    expect(openai?.secrets).to.deep.equal(['OPENAI_API_KEY']);

    const one = await api<{ name: string; latest: AgentView; versions: AgentView[] }>(stack, 'GET', '/v1/agents/postgres-agent');
    expect(one.status).to.equal(200);
    expect(one.body.name).to.equal('postgres-agent');
    expect(one.body.versions.map((v) => v.version)).to.deep.equal([1]);
    expect(one.body.latest).to.deep.equal(one.body.versions[0]);
    expect(Object.keys((one.body.latest.config as { statements: Record<string, unknown> }).statements)).to.include.members([
      'prices_in_window',
      'symbols',
      'price_on_date',
    ]);

    const missing = await api<ErrorBody>(stack, 'GET', '/v1/agents/no-such-agent');
    expect(missing.status).to.equal(404);
    expect(missing.body.error.code).to.equal('NOT_FOUND');
  });

  it('POST /v1/agents needs an admin key', async function () {
    const created = await api<{ key: string }>(stack, 'POST', '/v1/api-keys', {
      name: 'agent-writer',
      subject: 'user:agent-writer',
      scopes: ['runs:read', 'runs:write', 'definitions:write'],
      roles: [],
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const nonAdmin = { baseUrl: stack.baseUrl, apiKey: created.body.key };
    const refused = await postYaml<ErrorBody>(nonAdmin, summarizerYaml(undefined, 50));
    expect(refused.status).to.equal(403);
    expect(refused.body.error.code).to.equal('FORBIDDEN');
    // It may still read.
    expect((await api(nonAdmin, 'GET', '/v1/agents')).status).to.equal(200);
    const summarizer = await api<{ versions: AgentView[] }>(stack, 'GET', '/v1/agents/summarizer');
    expect(summarizer.body.versions.map((v) => v.version)).to.deep.equal([1]);
  });

  describe('versions', function () {
    let org: { organizationId: string; client: Client };

    before(async function () {
      org = await otherOrganization(stack, ['runs:read', 'runs:write', 'admin', 'definitions:write', 'approvals:decide']);
      await seedAgents(stack.deps.database.db, org.organizationId, await loadAgentCatalogEntries());
    });

    const versionsOf = async (name: string): Promise<number[]> => {
      const res = await api<{ versions: AgentView[] }>(org.client, 'GET', `/v1/agents/${name}`);
      expect(res.status).to.equal(200);
      return res.body.versions.map((v) => v.version);
    };

    /** A definition that holds at a checkpoint, then summarises `input.text`. */
    async function storeHoldThenSummarize(): Promise<string> {
      const slug = uniqueSlug('pin');
      const yaml = `slug: ${slug}
version: 1
name: Pinned agents
input: { type: object, required: [text], properties: { text: { type: string } } }
steps:
  - id: hold
    type: checkpoint
    prompt: Hold until the new agent version exists
    decisions: [continue]
    timeout: 1h
    onTimeout: abort
  - id: sum
    agent: summarizer
    needs: [hold]
    with: { text: "\${{ input.text }}" }
output:
  text: \${{ steps.sum.output.text }}
`;
      const res = await fetch(`${stack.baseUrl}/v1/definitions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${org.client.apiKey}`, 'content-type': 'application/yaml' },
        body: yaml,
      });
      expect(res.status, await res.clone().text()).to.equal(201);
      return slug;
    }

    async function startHeld(slug: string): Promise<{ runId: string; approvalId: string }> {
      const res = await api<{ id: string }>(org.client, 'POST', '/v1/runs', { definition: slug, input: { text: TEXT } });
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      const runId = res.body.id;
      const approval = await waitFor(
        async () => {
          const { body } = await api<{ items: Array<{ id: string; runId: string }> }>(org.client, 'GET', '/v1/approvals?status=pending&limit=200');
          return body.items.find((a) => a.runId === runId);
        },
        20_000,
        `pending approval of ${runId}`,
      );
      return { runId, approvalId: approval.id };
    }

    const pinsOf = async (runId: string): Promise<Record<string, number>> => {
      const [row] = await stack.deps.database.db.select({ pins: runs.agentVersions }).from(runs).where(eq(runs.id, runId));
      return row?.pins ?? {};
    };

    async function finish(runId: string, approvalId: string): Promise<string> {
      const decided = await api(org.client, 'POST', `/v1/approvals/${approvalId}/decision`, { decision: 'continue' });
      expect(decided.status, JSON.stringify(decided.body)).to.equal(200);
      const run = await waitForRun(org.client, runId);
      expect(run.status, JSON.stringify(run.error)).to.equal('completed');
      return (run.output as { text: string }).text;
    }

    it('adds versions from YAML and JSON; a wrong version is 409, an invalid entry 400; runs keep their pins', async function () {
      expect(await versionsOf('summarizer')).to.deep.equal([1]);
      const slug = await storeHoldThenSummarize();
      const early = await startHeld(slug);
      expect(await pinsOf(early.runId)).to.deep.equal({ summarizer: 1 });

      // YAML, stating the next version.
      const v2 = await postYaml<AgentView>(org.client, summarizerYaml(2, 3));
      expect(v2.status, JSON.stringify(v2.body)).to.equal(201);
      expect(v2.body).to.include({ name: 'summarizer', type: 'context', version: 2 });
      expect(v2.body.config).to.deep.equal({ maxWords: 3 });

      // A stated version other than latest + 1.
      const wrong = await postYaml<ErrorBody>(org.client, summarizerYaml(7, 3));
      expect(wrong.status).to.equal(409);
      expect(wrong.body.error.field).to.equal('version');
      expect(wrong.body.error.message).to.contain('version');
      const stale = await api<ErrorBody>(org.client, 'POST', '/v1/agents', entryObject(2, 4));
      expect(stale.status).to.equal(409);
      expect(stale.body.error.field).to.equal('version');

      // An invalid entry: positions and the field named, nothing stored.
      const invalid = await postYaml<ErrorBody>(org.client, summarizerYaml(3, '"many"'));
      expect(invalid.status, JSON.stringify(invalid.body)).to.equal(400);
      expect(invalid.body.error.code).to.equal('DEFINITION_INVALID');
      expect(invalid.body.error.message).to.match(/request\.yaml:7:\d+/).and.to.contain('maxWords');
      expect(invalid.body.error.details?.problems ?? []).to.have.length.greaterThan(0);
      const unknownKey = await postYaml<ErrorBody>(org.client, `${summarizerYaml(3, 3)}colour: blue\n`);
      expect(unknownKey.status).to.equal(400);
      expect(unknownKey.body.error.message).to.match(/request\.yaml:\d+:\d+/).and.to.contain('colour');
      expect(await versionsOf('summarizer'), 'a refused entry changes nothing').to.deep.equal([2, 1]);

      // JSON, version omitted: the next one.
      const v3 = await api<AgentView>(org.client, 'POST', '/v1/agents', entryObject(undefined, 5));
      expect(v3.status, JSON.stringify(v3.body)).to.equal(201);
      expect(v3.body).to.include({ name: 'summarizer', version: 3 });
      expect(await versionsOf('summarizer')).to.deep.equal([3, 2, 1]);
      const listed = await api<{ items: Array<AgentView & { versions: number }> }>(org.client, 'GET', '/v1/agents');
      expect(listed.body.items.find((a) => a.name === 'summarizer')).to.include({ version: 3, versions: 3 });

      // The run started before keeps v1 (maxWords 120: the whole text); a new run pins v3.
      const late = await startHeld(slug);
      expect(await pinsOf(late.runId)).to.deep.equal({ summarizer: 3 });
      expect(await pinsOf(early.runId)).to.deep.equal({ summarizer: 1 });
      expect(await finish(early.runId, early.approvalId)).to.equal(TEXT);
      expect(await finish(late.runId, late.approvalId)).to.equal(firstWords(5));

      // The default organization still has only the seeded version.
      const own = await api<{ versions: AgentView[] }>(stack, 'GET', '/v1/agents/summarizer');
      expect(own.body.versions.map((v) => v.version)).to.deep.equal([1]);
    });
  });
});

/** A summarizer entry as the JSON object of a catalog file. */
function entryObject(version: number | undefined, maxWords: number): Record<string, unknown> {
  return {
    name: 'summarizer',
    type: 'context',
    ...(version === undefined ? {} : { version }),
    description: `Summariser with at most ${maxWords} words.`,
    implementation: 'summarizer',
    config: { maxWords },
  };
}
