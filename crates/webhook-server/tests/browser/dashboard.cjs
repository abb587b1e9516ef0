// The dashboard in a real browser (Debian's chromium driven by playwright-core), run by
// tests/it/dashboard.rs against the real binary:
//   signs in (a wrong token first), posts webhooks (good, bad signature, to a dead
//   destination) and sees them appear live in the request log with their reasons, opens
//   the inspector and its attempt timeline, brings the destination back, replays the dead
//   letter and sees it delivered — checked at the destination (an HTTP server here) — and
//   saves a screenshot of each page.
// Environment: BASE_URL, OPS_TOKEN, SECRET, DEST_PORT, SCREENSHOTS, NODE_MODULES,
// CHROMIUM (default /usr/bin/chromium).
'use strict';

const path = require('node:path');
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');

const { chromium } = require(path.join(process.env.NODE_MODULES, 'playwright-core'));

const BASE = process.env.BASE_URL;
const TOKEN = process.env.OPS_TOKEN;
const SECRET = process.env.SECRET;
const DEST_PORT = Number(process.env.DEST_PORT);
const SHOTS = process.env.SCREENSHOTS;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function post(webhook, body, headers) {
  const response = await fetch(`${BASE}/webhook/${webhook}`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers },
  });
  return { status: response.status, text: await response.text() };
}

function sign(body) {
  return `sha256=${crypto.createHmac('sha256', SECRET).update(body).digest('hex')}`;
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox'],
  });
  const consoleErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    // 1. sign in: a wrong token is refused, the right one opens the dashboard
    await page.goto(`${BASE}/ui`);
    await page.fill('#token', 'not-the-token');
    await page.click('#sign-in');
    await page.waitForSelector('.error');
    check((await page.textContent('.error')).includes('Wrong token'), 'a wrong token says so');
    await shot(page, '01-login-refused');
    await page.fill('#token', TOKEN);
    await page.click('#sign-in');
    await page.waitForSelector('#cards .card');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'webhook_session');
    check(session && session.httpOnly && session.sameSite === 'Strict', `session cookie HttpOnly, SameSite=Strict: ${JSON.stringify(session)}`);

    // 2. the request log, live: nothing reloads the page or clicks "Filter"
    await page.click('button[data-tab="requests"]');
    await page.waitForSelector('#live.on');
    const good = JSON.stringify({ action: 'opened', number: 7 });
    const sent = [
      await post('signed', good, { 'X-Hub-Signature-256': sign(good), 'X-GitHub-Delivery': 'delivery-good-1' }),
      await post('signed', good, { 'X-Hub-Signature-256': sign('{"other":1}'), 'X-GitHub-Delivery': 'delivery-bad-1' }),
      await post('dead', JSON.stringify({ order: 42 }), { 'X-GitHub-Delivery': 'delivery-dead-1' }),
    ];
    check(sent[0].status === 200 && sent[1].status === 401 && sent[2].status === 200, `answers: ${JSON.stringify(sent)}`);
    await page.waitForFunction(() => document.querySelectorAll('#requests-table tbody tr[data-request-id]').length >= 3, null, { timeout: 15000 });
    const reasons = await page.$$eval('#requests-table tbody tr[data-request-id]', (rows) => rows.map((r) => r.textContent));
    check(reasons.some((t) => t.includes('signature_mismatch') && t.includes('401')), `the bad signature is listed with its reason: ${reasons}`);
    check(reasons.filter((t) => t.includes('accepted')).length === 2, `two accepted: ${reasons}`);
    await shot(page, '02-request-log');

    // 3. the inspector: the rejected request's verification result
    await page.click('#requests-table tr.outcome-rejected');
    await page.waitForSelector('#inspector:not([hidden])');
    check((await page.textContent('#inspector-verification')).includes('signature_mismatch'), 'the inspector names the reason');
    const headersShown = await page.textContent('#inspector-headers');
    check(headersShown.includes('***') && !headersShown.includes(sign('{"other":1}').slice(7)), 'the signature is masked');
    await shot(page, '03-inspector-rejected');

    // 4. the dead destination: the timeline ends in a dead letter
    await page.click('#inspector-close');
    const deadRow = page.locator('#requests-table tbody tr', { hasText: 'dead' }).first();
    const deadId = await deadRow.getAttribute('data-request-id');
    await deadRow.click();
    await page.waitForFunction(() => {
      const s = document.querySelector('#inspector-timeline .state');
      return s && s.textContent === 'dead_letter';
    }, null, { timeout: 20000 });
    const timeline = await page.textContent('#inspector-timeline');
    check(timeline.includes('attempt 1') && timeline.includes('attempt 2'), `both attempts on the timeline: ${timeline}`);
    check(await page.isVisible('#replay'), 'the inspector offers a replay');
    await shot(page, '04-inspector-dead-letter');
    await page.click('#inspector-close');

    // 5. the destination comes back; the dead letter is replayed from the dead-letters tab
    const received = [];
    const destination = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => { received.push({ url: req.url, body, id: req.headers['x-request-id'] || req.headers['x-webhook-request-id'] }); res.end('ok'); });
    });
    await new Promise((resolve) => destination.listen(DEST_PORT, '127.0.0.1', resolve));
    try {
      await page.click('button[data-tab="dead-letters"]');
      await page.waitForSelector('#dead-letters-table tbody tr[data-id]');
      check((await page.textContent('#dead-letters-table')).includes(deadId), 'the dead letter is listed with its request id');
      await shot(page, '05-dead-letters');
      await page.click('#dead-letters-table .replay-one');
      const deadline = Date.now() + 20000;
      while (!received.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      check(received.length === 1 && received[0].body === JSON.stringify({ order: 42 }), `delivered at the destination: ${JSON.stringify(received)}`);
      await page.waitForSelector('#dead-letters-table td.empty', { timeout: 10000 });

      // 6. the inspector shows the delivery after the replay
      await page.click('button[data-tab="requests"]');
      await page.locator(`#requests-table tr[data-request-id="${deadId}"]`).click();
      await page.waitForFunction(() => {
        const s = document.querySelector('#inspector-timeline .state');
        return s && s.textContent === 'delivered';
      }, null, { timeout: 20000 });
      await shot(page, '06-inspector-replayed');
      await page.click('#inspector-close');
    } finally {
      destination.close();
    }

    // 7. the overview counts what happened
    await page.click('button[data-tab="overview"]');
    await page.waitForSelector('#webhooks-table tr[data-webhook="signed"]');
    const signedRow = await page.textContent('#webhooks-table tr[data-webhook="signed"]');
    check(signedRow.includes('signature_mismatch: 1'), `overview counts the rejection: ${signedRow}`);
    await page.waitForSelector('#destinations-table td.health');
    await shot(page, '07-overview');

    // 8. the test tab: a sample without its signature is refused, nothing delivered
    await page.click('button[data-tab="test"]');
    await page.selectOption('#test-webhook', 'signed');
    await page.click('#test-form button[type="submit"]');
    await page.waitForSelector('#test-verdict');
    const verdict = await page.textContent('#test-verdict');
    check(verdict.includes('Refused'), `the test tab shows the refusal: ${verdict}`);
    await shot(page, '08-test');

    // 9. CSRF: a changing request with the session cookie but without the token is refused
    const csrf = await page.evaluate(async () => {
      const r = await fetch('/admin/dead-letters/replay?all=true', { method: 'POST' });
      return r.status;
    });
    check(csrf === 403, `no CSRF token: ${csrf}`);

    // no secret in any page
    for (const tab of ['overview', 'requests', 'dead-letters', 'test']) {
      await page.click(`button[data-tab="${tab}"]`);
      const html = await page.content();
      check(!html.includes(SECRET) && !html.includes(TOKEN), `no secret on ${tab}`);
    }
    // the refused login (401) and the CSRF probe (403) were meant; nothing else may fail
    const unexpected = consoleErrors.filter((e) => !/status of 40[13]/.test(e));
    check(!unexpected.length, `no errors in the browser console: ${unexpected}`);

    // 10. sign out: the session no longer opens the admin API
    await page.click('#logout');
    await page.waitForSelector('#token');
    const after = await page.evaluate(async () => (await fetch('/admin/overview')).status);
    check(after === 401, `signed out: ${after}`);
    console.log('dashboard: all checks passed');
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
