/**
 * The run console (issue 9 item 5) in real headless Chromium (the Debian package `chromium`,
 * driven by playwright-core): sign in with an API key, open the approval page from a webhook's
 * decideUrl, change a field of the form generated from `modify`, continue, and see the run
 * complete on its run page. Screenshots are kept in test-results/console/ (git-ignored). Also,
 * without a browser: the session cookie is HttpOnly and state-changing requests need its CSRF
 * token.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { projectRoot } from '../lib/index.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(projectRoot(), 'test-results', 'console');

describe('run console (issue 9)', function () {
  this.timeout(90_000);
  let stack: Stack;
  let receiver: Receiver;

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  /** Start prepare → approve (checkpoint with `modify`) → finish; returns the run id. */
  async function startApprovalRun(): Promise<string> {
    const slug = uniqueSlug('console');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: prepare
    agent: test-sleep
    with: { label: "${slug}-draft", delayMs: 1 }
  - id: approve
    type: checkpoint
    needs: [prepare]
    prompt: "Publish the campaign?"
    show:
      headline: "Coffee for remote developers"
      channels: [email, social]
      draft: \${{ steps.prepare.output.label }}
    decisions: [continue, abort]
    modify:
      type: object
      additionalProperties: false
      properties:
        headline: { type: string, minLength: 1, title: Headline }
        budget: { type: integer, minimum: 0, default: 100 }
  - id: finish
    agent: test-sleep
    needs: [approve]
    with:
      label: \${{ steps.approve.output.data.headline }}
      delayMs: 1
output:
  headline: \${{ steps.finish.output.label }}
`,
      [sleepAgent],
    );
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {}, webhookUrl: `${receiver.url}/webhooks` });
    expect(res.status).to.equal(202);
    return res.body.id;
  }

  describe('session', function () {
    it('keeps the key in an HttpOnly cookie and refuses state changes without the CSRF token', async function () {
      const bad = await fetch(`${stack.baseUrl}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: 'nope' }) });
      expect(bad.status).to.equal(401);
      const res = await fetch(`${stack.baseUrl}/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: stack.apiKey }) });
      expect(res.status).to.equal(200);
      const cookie = res.headers.get('set-cookie') ?? '';
      expect(cookie).to.match(/^baton_console=/).and.to.match(/HttpOnly/i).and.to.match(/SameSite=Strict/i);
      const { csrfToken } = (await res.json()) as { csrfToken: string };
      const session = cookie.split(';')[0] ?? '';
      const runId = await startApprovalRun();
      const read = await fetch(`${stack.baseUrl}/v1/runs/${runId}`, { headers: { cookie: session } });
      expect(read.status).to.equal(200);
      const forged = await fetch(`${stack.baseUrl}/v1/runs/${runId}/cancel`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json' }, body: '{}' });
      expect(forged.status).to.equal(403);
      expect((await api<{ status: string }>(stack, 'GET', `/v1/runs/${runId}`)).body.status).not.to.equal('cancelled');
      const real = await fetch(`${stack.baseUrl}/v1/runs/${runId}/cancel`, {
        method: 'POST',
        headers: { cookie: session, 'content-type': 'application/json', 'x-csrf-token': csrfToken },
        body: '{}',
      });
      expect(real.status).to.equal(200);
    });
  });

  describe('in headless Chromium', function () {
    let browser: Browser;
    let page: Page;
    let shot = 0;
    const screenshot = async (name: string) => {
      shot += 1;
      await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
    };

    before(async function () {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} not found: install the Debian package "chromium" (apt-get install -y chromium); .ci/run does this`);
      }
      mkdirSync(SHOTS, { recursive: true });
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      // Uncaught exceptions in the page (an HTTP error is shown as a message, never thrown).
      page.on('pageerror', (err) => problems.push(err.message));
      (page as Page & { problems?: string[] }).problems = problems;
      // Sign in through the form, as a person would; the session cookie serves every test.
      await page.goto(`${stack.baseUrl}/console`);
      await page.fill('#api-key', stack.apiKey);
      await page.click('button[type=submit]');
      await page.waitForSelector('h1:has-text("Runs")');
    });
    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && page) await screenshot(`failed-${(this.currentTest.title ?? '').slice(0, 40).replace(/\W+/g, '-')}`);
    });
    after(async function () {
      await browser?.close();
      process.stdout.write(`      console screenshots: ${SHOTS}\n`);
    });

    it('approves from the decideUrl page with a modified field, and the run page shows the run completed', async function () {
      await page.goto(`${stack.baseUrl}/console`);
      await page.waitForSelector('h1:has-text("Runs")');
      const runId = await startApprovalRun();
      // The run appears in the list through the live stream.
      await page.waitForSelector(`tr[data-run="${runId}"]`, { timeout: 15_000 });
      await screenshot('runs-list');

      const notice = await waitFor(
        async () => receiver.webhooks.find((w) => w.type === 'checkpoint.requested' && w.data.runId === runId)?.data,
        20_000,
        'checkpoint.requested webhook',
      );
      const decideUrl = (notice.approval as { decideUrl: string }).decideUrl;
      expect(decideUrl).to.contain('/decision?token=');

      await page.goto(decideUrl);
      await page.waitForSelector('text=Publish the campaign?');
      // `show` is rendered readably: keys and values, the list as items.
      expect(await page.textContent('.show')).to.contain('Coffee for remote developers').and.to.contain('social');
      // The form comes from `modify`: headline prefilled from `show`, budget from its default.
      expect(await page.inputValue('input[name=headline]')).to.equal('Coffee for remote developers');
      expect(await page.inputValue('input[name=budget]')).to.equal('100');
      expect(await page.locator('button[name=decision]').allTextContents()).to.deep.equal(['continue', 'abort']);
      await page.fill('input[name=headline]', 'Fresh coffee, remote teams');
      await screenshot('approval-page');
      await page.click('button[value=continue]');
      await page.waitForSelector('#decision-outcome:has-text("Decided: continue")');
      await screenshot('approval-decided');

      await page.click('#run-link');
      await page.waitForSelector('#run-status:has-text("completed")', { timeout: 20_000 });
      await page.waitForSelector('svg.dag g[data-step=finish].status-completed');
      await page.waitForSelector('#event-log :text("run.completed")');
      await screenshot('run-completed');
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(view.output).to.deep.equal({ headline: 'Fresh coffee, remote teams' });
      const approval = view.approvals[0] as { decidedVia?: string; data?: unknown };
      expect(approval.decidedVia).to.equal('token');
      expect(approval.data).to.deep.equal({ headline: 'Fresh coffee, remote teams', budget: 100 });

      // The link is single-use: opened again, the page says so instead of offering buttons.
      await page.goto(decideUrl);
      await page.waitForSelector('text=This link was already used.');
      expect(await page.locator('button[name=decision]').count()).to.equal(0);
      await screenshot('approval-link-used');
      expect((page as Page & { problems?: string[] }).problems).to.deep.equal([]);
    });

    it('shows a 409 from a decision that lost the race as a message, not a stack trace', async function () {
      const runId = await startApprovalRun();
      const notice = await waitFor(
        async () => receiver.webhooks.find((w) => w.type === 'checkpoint.requested' && w.data.runId === runId)?.data,
        20_000,
        'checkpoint.requested webhook',
      );
      const { decideUrl, id } = notice.approval as { decideUrl: string; id: string };
      await page.goto(decideUrl);
      await page.waitForSelector('button[value=abort]');
      // Someone else decides while the page is open.
      expect((await api(stack, 'POST', `/v1/approvals/${id}/decision`, { decision: 'continue', input: { headline: 'x' } })).status).to.equal(200);
      await page.click('button[value=abort]');
      await page.waitForSelector('#decision-outcome:has-text("Already decided")');
      await screenshot('approval-conflict');
    });

    it('the runs list filters by status and updates statuses live', async function () {
      const runId = await startApprovalRun();
      await page.goto(`${stack.baseUrl}/console#/runs?status=running`);
      const row = page.locator(`tr[data-run="${runId}"]`);
      await row.waitFor({ timeout: 20_000 });
      const approval = await waitFor(
        async () => (await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200')).body.items.find((a) => a.runId === runId),
        20_000,
        'pending approval',
      );
      // Only running runs are listed; a cancelled one is not.
      expect(await page.locator('td .badge').allTextContents()).to.satisfy((statuses: string[]) => statuses.every((st) => st === 'running'));
      await page.goto(`${stack.baseUrl}/console#/runs`);
      await row.waitFor();
      expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue', input: { headline: 'live' } })).status).to.equal(200);
      // No reload: the stream carries the new status.
      await page.waitForSelector(`tr[data-run="${runId}"] .badge:has-text("completed")`, { timeout: 20_000 });
      await screenshot('runs-live');
    });

    it('retries a failed step with edited input from the run page, and the run completes', async function () {
      const slug = uniqueSlug('console-retry');
      await storeDefinition(
        stack,
        `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n  - id: work\n    agent: test-sleep\n    with: { label: "${slug}", delayMs: 1, fail: true }\n  - id: after\n    agent: test-sleep\n    needs: [work]\n    with: { label: "${slug}-after", delayMs: 1 }\n`,
        [sleepAgent],
      );
      const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      const runId = res.body.id;
      expect((await waitForRun(stack, runId)).status).to.equal('failed');
      await page.goto(`${stack.baseUrl}/console#/runs/${runId}`);
      await page.waitForSelector('#run-status:has-text("failed")');
      await page.click('svg.dag g[data-step=work]');
      await page.waitForSelector('text=Attempt 1');
      // The retry box starts with the last attempt's input; fix it.
      expect(JSON.parse(await page.inputValue('#retry-input'))).to.deep.equal({ label: slug, delayMs: 1, fail: true });
      await page.fill('#retry-input', JSON.stringify({ label: slug, delayMs: 1, fail: false }));
      await screenshot('retry-edited-input');
      await page.click('button:has-text("Retry step")');
      await page.waitForSelector('#run-status:has-text("completed")', { timeout: 20_000 });
      await page.waitForSelector('text=Attempt 2');
      await screenshot('retry-completed');
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(view.steps.find((s) => s.id === 'work')?.attempts).to.equal(2);
    });

    it('lists pending approvals in the inbox and the run page offers interventions', async function () {
      const runId = await startApprovalRun();
      await page.goto(`${stack.baseUrl}/console#/approvals`);
      await page.waitForSelector(`a[href="#/runs/${runId}"]`, { timeout: 20_000 });
      await screenshot('approvals-inbox');
      await page.click(`a[href="#/runs/${runId}"]`);
      await page.waitForSelector('svg.dag g[data-step=approve]');
      await page.click('svg.dag g[data-step=prepare]');
      await page.waitForSelector('text=Attempt 1');
      await page.click('button:has-text("Cancel run")');
      await page.waitForSelector('#run-status:has-text("cancel")', { timeout: 20_000 });
      await screenshot('run-cancelled');
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('cancelled');
    });
  });
});
