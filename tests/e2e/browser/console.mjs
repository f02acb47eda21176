// console.mjs - drives kbridge's web pages in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core, which never downloads a browser).
//
//   node console.mjs console BASE_URL OUT_DIR   the console at BASE_URL/
//   node console.mjs docs    BASE_URL OUT_DIR   the protocol page at BASE_URL/docs
//
// Prints progress lines, then one JSON line {"ok":true|false,...} last; exits
// 0 only when every check passed. Screenshots go to OUT_DIR. Run by
// tests/e2e/test_console.py.
import { chromium } from 'playwright-core';
import path from 'node:path';

const [mode, base, outDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const result = { ok: false, mode, checks: [] };

// Everything is bounded: a hung browser fails the run instead of the suite.
const watchdog = setTimeout(() => finish(new Error('browser script exceeded 75 s')), 75000);

let browser;
async function finish(err) {
  clearTimeout(watchdog);
  if (err) result.error = String(err && err.stack || err);
  else result.ok = true;
  try { if (browser) await browser.close(); } catch (e) { /* already gone */ }
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
function check(cond, what, detail) {
  result.checks.push(what);
  console.log((cond ? 'ok   ' : 'FAIL ') + what + (detail !== undefined ? ' ' + JSON.stringify(detail) : ''));
  if (!cond) throw new Error(what + (detail !== undefined ? ': ' + JSON.stringify(detail) : ''));
}

// A page that records console errors, uncaught exceptions, failed requests
// and any request leaving the server's origin (the pages must be self-contained).
async function openPage(context) {
  const page = await context.newPage();
  const origin = new URL(base).origin, wsOrigin = origin.replace(/^http/, 'ws');
  page.problems = [];
  page.on('console', m => { if (m.type() === 'error') page.problems.push('console: ' + m.text()); });
  page.on('pageerror', e => page.problems.push('exception: ' + e.message));
  page.on('requestfailed', r => page.problems.push('request failed: ' + r.url() + ' ' + (r.failure() || {}).errorText));
  page.on('request', r => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith(wsOrigin + '/') && !u.startsWith('data:'))
      page.problems.push('external request: ' + u);
  });
  page.on('websocket', w => { if (!w.url().startsWith(wsOrigin + '/')) page.problems.push('external websocket: ' + w.url()); });
  return page;
}

const rows = page => page.$$eval('#messages > li', els => els.length);
const firstRow = page => page.$eval('#messages > li', el => el.textContent).catch(() => null);

async function consoleTest() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const page = await openPage(context);
  await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  check((await page.title()).includes('kbridge'), 'title names kbridge', await page.title());
  const url = await page.inputValue('#url');
  check(url === base.replace(/^http/, 'ws') + '/ws', 'WebSocket URL defaults to this host', url);
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  check(true, 'status shows the connection open', await page.textContent('#status'));

  // the /stats panel fills in, and lists the demo's channel as a quick button
  await page.waitForSelector('#stats dd[data-k="clients"]', { timeout: 6000 });
  await page.waitForSelector('#channels button[data-channel="dashboard"]', { timeout: 6000 });
  check(true, 'stats panel shows clients and the dashboard channel button');

  // subscribe: an ack, then data rows (type, channel, key, seq highlighted)
  await page.fill('#channel', 'dashboard');
  await page.click('#subscribe');
  await page.waitForSelector('#messages > li.ctl[data-type="ack"]', { timeout: 5000 });
  await page.waitForSelector('#subs li', { timeout: 5000 });
  check((await page.textContent('#subs')).includes('dashboard'), 'the subscription is listed', await page.textContent('#subs'));
  await page.waitForSelector('#messages > li.data[data-type="trade_data"]', { timeout: 10000 });
  const sample = await page.$eval('#messages > li.data[data-type="trade_data"]', el => ({
    type: el.querySelector('.type').textContent, channel: (el.querySelector('.ch') || {}).textContent,
    key: (el.querySelector('.key') || {}).textContent, seq: (el.querySelector('.seq') || {}).textContent,
    body: el.querySelector('.json').textContent }));
  check(sample.channel === 'dashboard' && /^#\d+$/.test(sample.seq) && /\/USDT$/.test(sample.key)
    && sample.body.includes('"price"'), 'a trade_data row shows channel, key, seq and the payload', sample);

  await page.waitForFunction(() => parseFloat(document.getElementById('rate').dataset.rate) > 0, null, { timeout: 8000 });
  check(true, 'msg/s counter above 0', await page.textContent('#rate'));
  result.rate = parseFloat(await page.getAttribute('#rate', 'data-rate'));

  // an error reply is shown apart from the data
  await page.fill('#channel', 'no-such-channel');
  await page.click('#subscribe');
  await page.waitForSelector('#messages > li.err', { timeout: 5000 });
  await page.waitForFunction(() => document.getElementById('errors').textContent.includes('UNKNOWN_CHANNEL'), null, { timeout: 5000 });
  check(await page.isVisible('#errs'), 'UNKNOWN_CHANNEL shown as an error row and in the errors panel');
  await page.fill('#channel', 'dashboard');

  // pause: the list stops growing while messages are counted as buffered
  await page.click('#pause');
  check(await page.getAttribute('#pause', 'aria-pressed') === 'true', 'pause button pressed');
  await page.waitForTimeout(300);           // a frame already scheduled may land
  const n0 = await rows(page), top0 = await firstRow(page);
  await page.waitForTimeout(1500);
  const n1 = await rows(page), top1 = await firstRow(page);
  const buffered = await page.textContent('#buffered');
  check(n1 === n0 && top1 === top0, 'no new rows while paused', { n0, n1 });
  check(/^[1-9]\d* buffered$/.test(buffered), 'paused messages are counted', buffered);
  await page.click('#pause');
  await page.waitForFunction(t => document.querySelector('#messages > li').textContent !== t, top0, { timeout: 5000 });
  check(await page.textContent('#buffered') === '', 'resume shows the buffered messages');
  result.rows = await rows(page);
  check(result.rows <= 500, 'at most 500 rows', result.rows);

  await page.click('#errors-clear');
  check(!(await page.isVisible('#errs')), 'the errors panel clears');
  await page.waitForTimeout(1200);          // a fresh stats refresh and a settled rate
  await page.screenshot({ path: path.join(outDir, 'console.png') });

  // a phone-sized viewport: no horizontal scrolling, the controls usable
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
    isMobile: true, hasTouch: true, colorScheme: 'dark' });
  const p2 = await openPage(phone);
  await p2.goto(base + '/?channel=dashboard', { waitUntil: 'load', timeout: 10000 });
  await p2.waitForSelector('#messages > li.data', { timeout: 10000 });
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, 'phone layout has no horizontal overflow', overflow);
  await p2.waitForTimeout(1000);
  await p2.screenshot({ path: path.join(outDir, 'console-phone.png') });

  const problems = page.problems.concat(p2.problems);
  check(problems.length === 0, 'no console errors, exceptions, failed or external requests', problems);
}

async function docsTest() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await openPage(context);
  const resp = await page.goto(base + '/docs', { waitUntil: 'load', timeout: 10000 });
  check(resp.status() === 200, 'GET /docs is 200', resp.status());
  check((resp.headers()['content-type'] || '').startsWith('text/html'), 'served as text/html', resp.headers()['content-type']);
  const routes = await page.$$eval('table.routes tbody tr', trs => trs.map(tr => [...tr.cells].map(td => td.textContent.trim())));
  check(routes.some(r => r[0] === 'trade-info' && r[1] === 'dashboard' && r[2] === 'trade_data'),
    'live route trade-info -> dashboard -> trade_data in the routes table body', routes);
  const text = await page.textContent('body');
  for (const code of ['INVALID_JSON', 'UNKNOWN_TYPE', 'UNKNOWN_CHANNEL', 'BAD_REQUEST', 'RATE_LIMITED',
    'TOO_MANY_SUBSCRIPTIONS', 'SLOW_CONSUMER', '1009', '1008'])
    check(text.includes(code), 'docs mention ' + code);
  const leftover = await page.evaluate(() => document.documentElement.outerHTML.includes('<!--ROUTES-->'));
  check(!leftover, 'the ROUTES placeholder was replaced');
  await page.screenshot({ path: path.join(outDir, 'docs.png'), fullPage: false });
  check(page.problems.length === 0, 'no console errors, exceptions, failed or external requests', page.problems);
}

try {
  if (!base || !outDir || !['console', 'docs'].includes(mode)) throw new Error('usage: node console.mjs console|docs BASE_URL OUT_DIR');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20000 });
  await (mode === 'console' ? consoleTest() : docsTest());
  await finish();
} catch (e) {
  await finish(e);
}
