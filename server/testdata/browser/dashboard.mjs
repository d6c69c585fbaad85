// Drives the dashboard in Debian's headless Chromium through playwright-core,
// for server/browser_test.go (which starts the server, runs the scripted
// scenario and passes everything here in the environment):
//
//   HOOKGATE_URL        the server's base URL
//   HOOKGATE_TOKEN      a bearer token of the principal that owns the webhook
//   HOOKGATE_LABEL      the webhook's label
//   HOOKGATE_HOOK_URL   its ingress URL and
//   HOOKGATE_SECRET     its signing secret (generic HMAC-SHA256), to POST new events
//   HOOKGATE_EXPECT     JSON: the cells the row must show after the scenario
//   HOOKGATE_ARTIFACTS  a directory for screenshots
//   CHROMIUM            the browser binary (default /usr/bin/chromium)
//
// It logs one line per step and exits non-zero with a message on the first
// failure.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import path from 'node:path';

const STEP_MS = 15000; // any single wait
const TOTAL_MS = 60000;

function need(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
}

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function log(message) {
  console.log(`dashboard.mjs: ${message}`);
}

const base = need('HOOKGATE_URL');
const token = need('HOOKGATE_TOKEN');
const label = need('HOOKGATE_LABEL');
const hookURL = need('HOOKGATE_HOOK_URL');
const secret = need('HOOKGATE_SECRET');
const expected = JSON.parse(need('HOOKGATE_EXPECT'));
const artifacts = need('HOOKGATE_ARTIFACTS');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

setTimeout(() => fail(`not done within ${TOTAL_MS / 1000}s`), TOTAL_MS).unref();

// post sends one signed webhook, as a provider would, and returns the event ID.
async function post(payload) {
  const body = JSON.stringify(payload);
  const sig = createHmac('sha256', secret).update(body).digest('hex');
  const resp = await fetch(hookURL, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Signature': sig },
    body,
  });
  const out = await resp.json().catch(() => ({}));
  if (resp.status !== 200 || !out.id) fail(`POST ${hookURL}: ${resp.status} ${JSON.stringify(out)}`);
  return out.id;
}

// rowCells reads the webhook's row as {field: text}.
async function rowCells(page) {
  return page.evaluate((l) => {
    const tr = document.querySelector(`tr[data-label="${l}"]`);
    if (!tr) return null;
    const out = {};
    for (const c of tr.querySelectorAll('[data-field]')) out[c.dataset.field] = c.textContent;
    return out;
  }, label);
}

// waitForRow waits until the row shows want (a subset of its cells).
async function waitForRow(page, want, what) {
  try {
    await page.waitForFunction(([l, w]) => {
      const tr = document.querySelector(`tr[data-label="${l}"]`);
      if (!tr) return false;
      return Object.entries(w).every(([f, v]) => tr.querySelector(`[data-field="${f}"]`)?.textContent === v);
    }, [label, want], { timeout: STEP_MS, polling: 100 });
  } catch {
    fail(`${what}: want ${JSON.stringify(want)}, the row shows ${JSON.stringify(await rowCells(page))}`);
  }
  log(`${what}: ${JSON.stringify(want)}`);
}

async function waitFor(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 100 });
  } catch {
    const feed = await page.evaluate(() => [...document.querySelectorAll('#feed li')].map((li) => li.textContent));
    const status = await page.evaluate(() => document.getElementById('feed-status').textContent);
    fail(`${what}: not seen within ${STEP_MS / 1000}s (feed ${status}: ${JSON.stringify(feed)})`);
  }
  log(what);
}

const browser = await chromium.launch({
  executablePath,
  // playwright-core gives each launch a new, empty profile directory (under
  // TMPDIR) and deletes it on close.
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  timeout: STEP_MS,
});
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  await page.goto(base + '/', { waitUntil: 'load', timeout: STEP_MS });
  log('page loaded');

  // The token field has its label and has the focus: type it and press
  // Enter, with the keyboard only.
  const field = page.getByLabel('Bearer token');
  if (!(await field.evaluate((e) => e === document.activeElement))) fail('the "Bearer token" field does not have the focus on load');
  await page.screenshot({ path: path.join(artifacts, 'dashboard-token.png') });
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await waitForRow(page, expected, 'row after the scripted run');
  if ((await page.evaluate(() => sessionStorage.getItem('hookgate.token'))) !== token) fail('the token is not in sessionStorage');
  if (!(await page.locator('#token-form').isHidden())) fail('the token form is still shown after connecting');
  const url = await page.locator(`tr[data-label="${label}"] code`).textContent();
  if (url !== hookURL) fail(`the row shows URL ${url}, want ${hookURL}`);

  // A reload keeps the session: the token comes back from sessionStorage.
  await page.reload({ waitUntil: 'load', timeout: STEP_MS });
  await waitForRow(page, expected, 'row after a reload, without entering the token again');

  await waitFor(page, () => document.getElementById('feed-status').textContent === 'live', undefined, 'live feed connected');
  const first = await post({ id: 'browser-1', type: 'order.created', amount: 42 });
  await waitFor(page, (id) => document.querySelector('#feed li:first-child')?.dataset.id === id, first, `event ${first} at the top of the feed`);
  const second = await post({ id: 'browser-2', type: 'order.paid', amount: 42 });
  await waitFor(page, ([a, b]) => {
    const ids = [...document.querySelectorAll('#feed li')].map((li) => li.dataset.id);
    return ids[0] === b && ids[1] === a;
  }, [first, second], `event ${second} above ${first}: newest first`);
  const top = await page.locator('#feed li').first().textContent();
  for (const want of ['order.paid', label, second, '"browser-2"']) {
    if (!top.includes(want)) fail(`the newest feed item ${JSON.stringify(top)} lacks ${want}`);
  }
  const pending = String(Number(expected.pending) + 2);
  await waitForRow(page, { accepted: String(Number(expected.accepted) + 2), pending }, 'counts after two new events');

  // Every control is reachable with Tab.
  const reached = new Set();
  for (let i = 0; i < 25; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => {
      const e = document.activeElement;
      return e.id || e.getAttribute('aria-label') || e.textContent.trim();
    }));
  }
  for (const want of ['forget', 'window', `Copy the URL of ${label}`, 'clear-feed', 'feed', 'chart-label']) {
    if (!reached.has(want)) fail(`Tab never reaches ${want}; it reached ${JSON.stringify([...reached])}`);
  }
  log('every control reachable with Tab');

  // The chart has a text alternative naming the latest numbers.
  const caption = await page.locator('#chart-desc').textContent();
  if (!caption.includes(`${label}: processing latency p50`)) fail(`chart caption ${JSON.stringify(caption)}`);

  await page.locator('body').click({ position: { x: 5, y: 5 } }); // no focus ring in the picture
  const shot = path.join(artifacts, 'dashboard.png');
  await page.screenshot({ path: shot });
  log(`screenshot ${shot}`);

  const leaked = requests.filter((u) => u.includes(token));
  if (leaked.length) fail(`the token appears in request URLs: ${leaked.join(', ')}`);
  if (problems.length) fail(`the page reported errors:\n${problems.join('\n')}`);
  log('ok');
} finally {
  await browser.close();
}
