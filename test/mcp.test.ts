/**
 * Baton's MCP server over streamable HTTP (`/mcp`), driven by the official SDK client: tools,
 * a kpi-tracking run decided through decide_approval, the same checkpoint asked back through
 * elicitation, and the manifest resource. (stdio: test/cli.test.ts.)
 */
import { expect } from 'chai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startStack, type Stack } from './support/stack.js';
import { toolJson } from './support/mcp.js';

const INPUT = { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31' };

describe('MCP server over streamable HTTP (official client)', function () {
  this.timeout(60_000);
  let stack: Stack;
  const clients: Client[] = [];

  async function connect(options: { elicit?: (message: string) => Record<string, unknown> } = {}): Promise<Client> {
    const client = new Client({ name: 'baton-test', version: '1.0.0' }, { capabilities: options.elicit ? { elicitation: { form: {} } } : {} });
    if (options.elicit) {
      const answer = options.elicit;
      client.setRequestHandler(ElicitRequestSchema, (request) => ({ action: 'accept', content: answer(String(request.params.message)) as Record<string, string> }));
    }
    const transport = new StreamableHTTPClientTransport(new URL(`${stack.baseUrl}/mcp`), { requestInit: { headers: { authorization: `Bearer ${stack.apiKey}` } } });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  before(async function () {
    stack = await startStack();
  });
  after(async function () {
    for (const c of clients) await c.close();
    await stack?.close();
  });

  it('refuses a connection without the API key', async function () {
    const client = new Client({ name: 'anonymous', version: '1.0.0' });
    let error: unknown;
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.baseUrl}/mcp`)));
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.match(/401|API key/);
  });

  it('lists the tools and the manifest resource template', async function () {
    const client = await connect();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).to.include.members(['list_definitions', 'describe_definition', 'start_run', 'get_run', 'list_approvals', 'decide_approval', 'cancel_run']);
    // One start tool per definition, whose input schema is the definition's.
    const own = tools.find((t) => t.name === 'start_kpi_tracking');
    const ownInput = (own?.inputSchema.properties as { input: { required: string[]; additionalProperties: boolean } }).input;
    expect(ownInput.required).to.have.members(['symbols', 'from', 'to']);
    expect(ownInput.additionalProperties).to.equal(false);
    const refused = (await client.callTool({ name: 'start_kpi_tracking', arguments: { input: { symbols: ['AAPL'], from: '2005-01-01' } } })) as CallToolResult;
    expect(refused.isError).to.equal(true);
    expect(JSON.stringify(refused.content)).to.match(/Invalid arguments for tool start_kpi_tracking.*input\.to/);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((r) => r.uriTemplate)).to.deep.equal(['baton://runs/{id}/manifest']);
    const described = toolJson<{ input: { required: string[] } }>(await client.callTool({ name: 'describe_definition', arguments: { slug: 'kpi-tracking' } }));
    expect(described.input.required).to.deep.equal(['symbols', 'from', 'to']);
  });

  it('starts kpi-tracking, returns its checkpoint as a pending approval, decides it and reads the completed run', async function () {
    const client = await connect();
    const bad = (await client.callTool({ name: 'start_run', arguments: { definition: 'kpi-tracking', input: { symbols: ['aapl'], from: '2005-01-01', to: '2006-01-01' } } })) as CallToolResult;
    expect(bad.isError).to.equal(true);
    expect(JSON.stringify(bad.content)).to.match(/VALIDATION_FAILED.*symbols/);

    const started = toolJson<{ run: { id: string; status: string }; pendingApproval: { id: string; prompt: string; decisions: string[] } }>(
      await client.callTool({ name: 'start_run', arguments: { definition: 'kpi-tracking', input: INPUT, waitSeconds: 30 } }),
    );
    expect(started.run.status).to.equal('running');
    expect(started.pendingApproval.prompt).to.match(/^Review the KPIs for AAPL, MSFT/);
    const inbox = toolJson<{ items: Array<{ id: string }> }>(await client.callTool({ name: 'list_approvals', arguments: {} }));
    expect(inbox.items.map((a) => a.id)).to.include(started.pendingApproval.id);

    const decided = toolJson<{ status: string; decision: string }>(
      await client.callTool({ name: 'decide_approval', arguments: { approvalId: started.pendingApproval.id, decision: 'continue', comment: 'via MCP' } }),
    );
    expect(decided).to.include({ status: 'decided', decision: 'continue' });
    const again = (await client.callTool({ name: 'decide_approval', arguments: { approvalId: started.pendingApproval.id, decision: 'continue' } })) as CallToolResult;
    expect(JSON.stringify(again.content)).to.match(/CONFLICT/);

    let run: { status: string; output: { kpis: Record<string, unknown> } } | undefined;
    for (let i = 0; i < 100 && run?.status !== 'completed'; i += 1) {
      run = toolJson(await client.callTool({ name: 'get_run', arguments: { id: started.run.id } }));
      if (run?.status !== 'completed') await new Promise((r) => setTimeout(r, 200));
    }
    expect(run?.status).to.equal('completed');
    expect(run?.output.kpis).to.have.keys(['AAPL', 'MSFT']);

    const manifest = await client.readResource({ uri: `baton://runs/${started.run.id}/manifest` });
    const body = JSON.parse(String((manifest.contents[0] as { text: string }).text)) as { manifestVersion: number; run: { id: string } };
    expect(body.manifestVersion).to.equal(1);
    expect(body.run.id).to.equal(started.run.id);
  });

  it('asks the checkpoint through elicitation when the client supports it, and waits on to the end (start_kpi_tracking)', async function () {
    const asked: string[] = [];
    const client = await connect({
      elicit: (message) => {
        asked.push(message);
        return { decision: 'continue', comment: 'elicited' };
      },
    });
    const result = toolJson<{ run: { status: string; approvals: Array<{ decision: string; comment: string }> }; pendingApproval?: unknown }>(
      await client.callTool({ name: 'start_kpi_tracking', arguments: { input: INPUT, waitSeconds: 45 } }, undefined, { timeout: 50_000 }),
    );
    expect(asked).to.have.length(1);
    expect(asked[0]).to.match(/^Review the KPIs for AAPL, MSFT/);
    expect(result.pendingApproval).to.equal(undefined);
    expect(result.run.status).to.equal('completed');
    expect(result.run.approvals[0]).to.include({ decision: 'continue', comment: 'elicited' });
  });
});
