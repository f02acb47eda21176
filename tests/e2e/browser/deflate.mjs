// deflate.mjs - a WebSocket in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core, which never downloads a browser), for
// tests/e2e/test_deflate_browser.py: the browser's own permessage-deflate.
//
//   node deflate.mjs PAGE_URL WS_URL RECORDS
//
// Loads PAGE_URL, opens a WebSocket to WS_URL from the page and prints
// {"open":true,"extensions":...} (the test then produces RECORDS records);
// the page sends a JSON ping with a 2,000-byte id, and once RECORDS data
// messages and the pong have arrived prints one result line
// {"ok":true,"extensions":...,"messages":[...]} and exits. Exits 1 on an
// error and after 30 s.
import { chromium } from 'playwright-core';

const [pageUrl, wsUrl, want] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let browser;

async function finish(result) {
  clearTimeout(watchdog);
  try { if (browser) await browser.close(); } catch (e) { /* already gone */ }
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

const watchdog = setTimeout(() => finish({ ok: false, error: 'browser script exceeded 30 s' }), 30000);

try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const ext = await page.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.__msgs = [];
    window.__ws = ws;
    ws.onmessage = (ev) => window.__msgs.push(JSON.parse(ev.data));
    ws.onopen = () => resolve(ws.extensions);
    ws.onerror = () => reject(new Error('WebSocket error'));
    ws.onclose = (ev) => { window.__closed = ev.code; };
  }), wsUrl);
  console.log(JSON.stringify({ open: true, extensions: ext }));
  const pingId = 'chromium-' + 'c'.repeat(2000);
  await page.evaluate((id) => window.__ws.send(JSON.stringify({ type: 'ping', id })), pingId);
  await page.waitForFunction(([n, id]) =>
    window.__msgs.filter((m) => 'offset' in m).length >= n &&
    window.__msgs.some((m) => m.type === 'pong' && m.id === id), [Number(want), pingId], { timeout: 20000 });
  const messages = await page.evaluate(() => window.__msgs);
  const closed = await page.evaluate(() => window.__closed || null);
  await finish({ ok: closed === null, extensions: ext, messages, closed });
} catch (e) {
  await finish({ ok: false, error: String(e && e.stack || e) });
}
