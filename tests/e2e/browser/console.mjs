// console.mjs - drives kbridge's web pages in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core, which never downloads a browser).
//
//   node console.mjs console BASE_URL OUT_DIR   the console at BASE_URL/
//   node console.mjs docs    BASE_URL OUT_DIR   the protocol page at BASE_URL/docs
//   node console.mjs state   BASE_URL OUT_DIR   the console at BASE_URL/?type=web (the
//                                               state dialect), in steps: see stateTest
//   node console.mjs workers BASE_URL OUT_DIR   the console of a kbridge --workers 2:
//                                               the stats panel counts the workers
//   node console.mjs sse     BASE_URL OUT_DIR   the console switched to SSE (GET /sse),
//                                               in steps: see sseTest
//   node console.mjs publish BASE_URL OUT_DIR   the Publish card of a kbridge with
//                                               --publish orders=...: see publishTest
//   node console.mjs tls     BASE_URL OUT_DIR SPKI   the console test over https://
//                                               and wss://, the server's certificate
//                                               trusted only through
//                                               --ignore-certificate-errors-spki-list=SPKI
//
// Prints progress lines, then one JSON line {"ok":true|false,...} last; exits
// 0 only when every check passed. Screenshots go to OUT_DIR. Run by
// tests/e2e/test_console.py.
import { chromium } from 'playwright-core';
import path from 'node:path';
import readline from 'node:readline';

const [mode, base, outDir, spki] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const result = { ok: false, mode, checks: [] };
const sockets = [];         // every WebSocket a page opened: {url, received} (frames from the server)

// Everything is bounded: a hung browser fails the run instead of the suite.
const LIMIT_S = mode === 'state' ? 110 : mode === 'sse' ? 90 : 75;
const watchdog = setTimeout(() => finish(new Error('browser script exceeded ' + LIMIT_S + ' s')), LIMIT_S * 1000);

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
  page.on('websocket', w => {
    const s = { url: w.url(), received: 0 };
    sockets.push(s);
    w.on('framereceived', () => s.received++);
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
  // Chromium offers permessage-deflate: the status says it was negotiated
  check(/^connected · deflate$/.test(await page.textContent('#status')),
        'status shows the connection negotiated deflate', await page.textContent('#status'));

  // the /stats panel fills in, and lists the demo's channel as a quick button
  await page.waitForSelector('#stats dd[data-k="clients"]', { timeout: 6000 });
  await page.waitForSelector('#stats dd[data-k="compression_ratio"]', { timeout: 6000 });
  check(true, 'stats panel shows the compression ratio');
  await page.waitForSelector('#channels button[data-channel="dashboard"]', { timeout: 6000 });
  check(true, 'stats panel shows clients and the dashboard channel button');
  // the footer names the version and the build target (architecture, libc)
  result.statsVer = await page.textContent('#stats-ver');
  check(/^v\S+ · (x86_64|aarch64)-linux-(gnu|musl) · librdkafka \S+$/.test(result.statsVer),
        'stats footer shows version, build target and librdkafka', result.statsVer);

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

  // a token: sent as the first message after (re)connecting and again with
  // "Send auth"; the outcome shown; the token itself shown and stored nowhere
  const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25zb2xlIn0.c2lnbmF0dXJl', sent = [];
  page.on('websocket', w => w.on('framesent', f => sent.push(String(f.payload))));
  const frame = async (n, what) => {
    for (let i = 0; i < 100 && sent.length <= n; i++) await page.waitForTimeout(50);
    let m = null;
    try { m = JSON.parse(sent[n]); } catch { /* not sent, or not JSON */ }
    check(m && m.type === 'auth' && m.token === TOKEN, what, sent[n]);
  };
  await page.fill('#token', TOKEN);
  await page.press('#url', 'Enter');        // reconnect
  await frame(0, 'the first message after connecting is the auth message');
  await page.waitForFunction(() => !['', 'sent…'].includes(document.getElementById('auth-state').textContent), null, { timeout: 5000 });
  check(true, 'the auth outcome is shown', await page.textContent('#auth-state'));
  const n = sent.length;
  await page.click('#auth');
  await frame(n, 'Send auth sends it again');
  await page.waitForSelector('#messages > li.out[data-type="auth"]', { timeout: 5000 });
  const leak = await page.evaluate(t => ({ page: document.documentElement.outerHTML.includes(t), url: location.href.includes(t),
    storage: JSON.stringify([{ ...localStorage }, { ...sessionStorage }]).includes(t) }), TOKEN);
  check(!leak.page && !leak.url && !leak.storage, 'the token is shown, put in the URL and stored nowhere', leak);

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

// ---- the state dialect: ?type=web on the page goes onto the WebSocket URL.
// step(NAME) prints {"step":NAME} and waits for a line on stdin: the test
// produces NAME's records meanwhile (test_console.py says which).
const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log(JSON.stringify({ step: name }));
  const r = await stdinLines.next();
  if (r.done) throw new Error('stdin closed at step ' + name);
}
// A cell of the State card, in the page: {text, chg} or null. col null: the row's first td.
const CELL = ([ch, key, col]) => {
  const q = s => '"' + CSS.escape(s) + '"';
  const el = document.querySelector('#state-body .tbl[data-channel=' + q(ch) + '] tr[data-key=' + q(key) + '] td' +
    (col === null ? '' : '[data-col=' + q(col) + ']'));
  return el && { text: el.textContent, chg: el.classList.contains('chg') };
};
const cell = (page, ch, key, col) => page.evaluate(CELL, [ch, key, col]);
// Waits (bounded) until the cell reads `text` (and, when chg is given, is or
// is not highlighted as changed); returns the cell.
async function waitCell(page, ch, key, col, text, chg, ms = 10000) {
  try {
    await page.waitForFunction(`(() => { const got = (${CELL})(${JSON.stringify([ch, key, col])});
      return !!got && got.text === ${JSON.stringify(text)}${chg === undefined ? '' : ' && got.chg === ' + chg}; })()`, null, { timeout: ms });
  } catch (e) {
    throw new Error(`cell ${ch}/${key}/${col} never read ${JSON.stringify(text)}` + (chg === undefined ? '' : ` with chg=${chg}`) +
      `: now ${JSON.stringify(await cell(page, ch, key, col))}`);
  }
  return cell(page, ch, key, col);
}
const caption = (page, ch) => page.$eval(`#state-body .tbl[data-channel="${ch}"] caption`, el => el.textContent).catch(() => null);
async function waitCaption(page, ch, text, ms = 10000) {
  try {
    await page.waitForFunction(([c, t]) => { const el = document.querySelector(`#state-body .tbl[data-channel="${c}"] caption`); return el && el.textContent === t; },
      [ch, text], { timeout: ms });
  } catch (e) { throw new Error(`caption of ${ch} never read ${JSON.stringify(text)}: now ${JSON.stringify(await caption(page, ch))}`); }
  check(true, `table ${ch}: ${text}`);
}
const counters = page => page.evaluate(() => Object.fromEntries(['st-snaps', 'st-upds', 'st-seq', 'st-time'].map(id => [id, document.getElementById(id).textContent])));

async function stateTest() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' });
  const page = await openPage(context);
  // Every task over 50 ms the page runs, for "10,000 keys must not freeze the page".
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver(l => { for (const e of l.getEntries()) window.__longTasks.push(Math.round(e.duration)); })
      .observe({ type: 'longtask', buffered: true });
  });
  await page.goto(base + '/?type=web', { waitUntil: 'load', timeout: 10000 });
  const url = await page.inputValue('#url');
  check(url === base.replace(/^http/, 'ws') + '/ws?type=web', 'the page\'s ?type=web goes onto the WebSocket URL', url);
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  check(await page.isVisible('#state'), 'the State card shows');
  const note = await page.textContent('#mode-note');
  check(await page.isVisible('#mode-note') && note.includes('receives state, not records') && note.includes('250 ms'),
    'the stream card says this connection receives state, not records', note);
  const labels = await page.evaluate(() => ({ card: document.getElementById('state').getAttribute('aria-label'),
    filter: document.getElementById('state-filter').labels[0].textContent, note: document.getElementById('mode-note').getAttribute('role') }));
  check(labels.card === 'State' && labels.filter === 'Filter rows by key' && labels.note === 'note',
    'the State card, its filter and the stream\'s note are labelled', labels);

  // subscribe: an ack, one snapshot with what the channels held
  await page.fill('#channel', 'market_data, account, orders');
  await page.click('#subscribe');
  await page.waitForSelector('#messages > li.ctl[data-type="ack"]', { timeout: 5000 });
  await page.waitForSelector('#messages > li.state[data-type="snapshot"]', { timeout: 5000 });
  await waitCaption(page, 'market_data', 'market_data map · 2 keys');
  let c = await waitCell(page, 'market_data', 'BTC', 'last_price', '97000.5');
  check(true, 'a map: a row per key, the fields as columns', c);
  c = await cell(page, 'market_data', 'BTC', 'book');
  check(c && c.text === '{"bid":96999,"ask":97001}', 'a nested value is compact JSON', c);
  c = await cell(page, 'market_data', 'ETH', 'book');
  check(c && c.text === '', 'a field a value lacks is an empty cell', c);
  const heads = await page.$$eval('#state-body .tbl[data-channel="market_data"] thead th', els => els.map(e => [e.textContent, e.getAttribute('scope')]));
  check(JSON.stringify(heads) === JSON.stringify([['key', 'col'], ['symbol', 'col'], ['last_price', 'col'], ['book', 'col']]),
    'the map\'s columns: key, then the values\' fields in order', heads);
  const rowHeads = await page.$$eval('#state-body .tbl[data-channel="market_data"] tbody th[scope="row"]', els => els.map(e => e.textContent));
  check(JSON.stringify(rowHeads) === '["BTC","ETH"]', 'each row is headed by its key', rowHeads);
  await waitCaption(page, 'account', 'account value · 2 fields');
  c = await waitCell(page, 'account', 'total_balance', 'value', '10250.5');
  check((await cell(page, 'account', 'currency', 'value') || {}).text === 'USD', 'a single value: field/value rows', c);
  await waitCaption(page, 'orders', 'orders list · 1 items');
  c = await waitCell(page, 'orders', '0', 'status', 'new');
  check(true, 'a list: rows in order', c);
  let n = await counters(page);
  check(n['st-snaps'] === '1' && /^\d+$/.test(n['st-seq']) && /^\d\d:\d\d:\d\d\.\d{3}$/.test(n['st-time']),
    'one snapshot counted, its seq and timestamp shown', n);
  check(await page.$$eval('#messages > li.data', els => els.length) === 0, 'no record rows on a state connection');
  const seq0 = +n['st-seq'];

  // updates: a changed field, a deleted key, a new key, a value, a list
  await step('updates');
  c = await waitCell(page, 'market_data', 'BTC', 'last_price', '97001', true);
  check(true, 'the changed field shows its newest value, highlighted', c);
  c = await cell(page, 'market_data', 'BTC', 'symbol');
  check(c && c.text === 'BTC' && !c.chg, 'an unchanged cell is not highlighted', c);
  c = await waitCell(page, 'market_data', 'ETH', null, 'deleted');
  const gone = await page.$eval('#state-body .tbl[data-channel="market_data"] tr[data-key="ETH"]', el => el.className);
  check(gone === 'gone', 'the deleted key shows as deleted', { c, gone });
  c = await waitCell(page, 'market_data', 'SOL', 'last_price', '150');
  check(true, 'a new key gets a row', c);
  // "market_data.__proto__": {...}, set naively, would be market_data's prototype, not a key
  c = await waitCell(page, 'market_data', '__proto__', 'polluted', 'true');
  const polluted = await page.evaluate(() => ({}).polluted);
  check(polluted === undefined, 'a key named __proto__ is a row, never the prototype', { c, polluted });
  await waitCaption(page, 'market_data', 'market_data map · 4 keys');
  c = await waitCell(page, 'account', 'total_balance', 'value', '10240.5');
  check(true, 'the single value\'s changed field', c);
  c = await waitCell(page, 'orders', '0', 'status', 'filled');
  const o2 = await waitCell(page, 'orders', '1', 'id', 'o2');
  check(true, 'the list, replaced whole, in order', [c, o2]);
  await waitCaption(page, 'orders', 'orders list · 2 items');
  n = await counters(page);
  check(+n['st-upds'] >= 1 && +n['st-seq'] > seq0 && n['st-snaps'] === '1', 'updates counted, the last seq grew', n);
  check(await page.$$eval('#messages > li.state[data-type="update"]', els => els.length) >= 1, 'updates listed in the stream');
  await page.screenshot({ path: path.join(outDir, 'console-state.png') });

  // 10,000 keys: arrive as updates, then again as one snapshot (refresh)
  await page.fill('#channel', 'bulk');
  await page.click('#subscribe');
  await waitCaption(page, 'bulk', 'bulk map · 0 keys');
  const snaps1 = +(await counters(page))['st-snaps'];
  await step('bulk');
  await waitCaption(page, 'bulk', 'bulk map · 10,000 keys', 30000);
  let rowsShown = await page.$$eval('#state-body .tbl[data-channel="bulk"] tbody tr', els => els.length);
  let more = await page.textContent('#state-body .tbl[data-channel="bulk"] .more');
  check(rowsShown === 200 && more.includes('9,800 more not shown'), 'at most 200 rows drawn, the rest counted', { rowsShown, more });
  c = await waitCell(page, 'bulk', 'k0', 'v', '10000');
  check(true, 'the newest value of a bulk key', c);
  await page.click('#refresh');
  await page.waitForFunction(s => +document.getElementById('st-snaps').textContent > s, snaps1, { timeout: 10000 });
  await waitCaption(page, 'bulk', 'bulk map · 10,000 keys');
  await page.waitForTimeout(200);           // the message list draws in the same or the next frame
  const cutRow = await page.$eval('#messages > li.state[data-type="snapshot"]', li => {
    li.click();
    const t = li.querySelector('.json').textContent;
    return { open: li.classList.contains('open'), len: t.length, end: t.slice(-1) };
  });
  check(cutRow.open && cutRow.end === '…' && cutRow.len < 100000, 'the message list keeps a 10,000-key snapshot cut at 64 KiB', cutRow);
  await page.fill('#state-filter', 'k9999');
  c = await waitCell(page, 'bulk', 'k9999', 'v', '19999');
  more = await page.textContent('#state-body .tbl[data-channel="bulk"] .more');
  check(more.includes('1 of 10,000 match'), 'the filter finds a key beyond the first 200', { c, more });
  await page.fill('#state-filter', '');
  await waitCell(page, 'market_data', 'BTC', 'last_price', '97001');
  const long = await page.evaluate(() => window.__longTasks);
  result.longTasks = long;
  const worst = Math.max(0, ...long);
  check(worst < 500, 'no task froze the page for half a second (10,000 keys as updates and as a snapshot)', { worst, tasks: long.length });
  rowsShown = await page.$$eval('#state-body tbody tr', els => els.length);
  check(rowsShown <= 4 * 200, 'rows drawn stay capped', rowsShown);

  // a phone: no horizontal overflow, the State card first
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
    isMobile: true, hasTouch: true, colorScheme: 'dark' });
  const p2 = await openPage(phone);
  await p2.goto(base + '/?type=web&channel=market_data,orders', { waitUntil: 'load', timeout: 10000 });
  await waitCell(p2, 'market_data', 'BTC', 'last_price', '97001');
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, 'phone layout has no horizontal overflow', overflow);
  await p2.screenshot({ path: path.join(outDir, 'console-state-phone.png') });

  const problems = page.problems.concat(p2.problems);
  check(problems.length === 0, 'no console errors, exceptions, failed or external requests', problems);
}

// ---- TLS: the same console test over https:// and wss://. The server's
// certificate is issued by a test CA no trust store holds: a browser without
// the SPKI flag must refuse the page; one launched with
// --ignore-certificate-errors-spki-list=SPKI (the sha256 of the server
// certificate's public key) loads it and streams over wss://.
async function tlsTest() {
  check(base.startsWith('https://'), 'the base URL is https', base);
  check(/^[A-Za-z0-9+/]{43}=$/.test(spki || ''), 'an SPKI sha256 in base64 was given', spki);
  const plain = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20000 });
  let refused = null;
  try {
    const p0 = await (await plain.newContext()).newPage();
    await p0.goto(base + '/', { waitUntil: 'load', timeout: 10000 }).then(() => { refused = 'loaded'; }, e => { refused = String(e.message); });
  } finally { await plain.close(); }
  check(/ERR_CERT_/.test(refused), 'without the SPKI flag Chromium refuses the certificate', (refused || '').split('\n')[0]);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 20000,
    args: ARGS.concat(['--ignore-certificate-errors-spki-list=' + spki]) });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await openPage(context);
  const resp = await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  check(resp.status() === 200 && page.url().startsWith('https://'), 'GET / over https is 200', [resp.status(), page.url()]);
  const sec = await resp.securityDetails();
  check(sec && /^TLS 1\.[23]$/.test(sec.protocol) && sec.subjectName === '127.0.0.1' && /kbridge test CA/.test(sec.issuer || ''),
    'served with the test certificate over TLS 1.2+', sec);
  check(await page.evaluate(() => window.isSecureContext && location.protocol === 'https:'), 'the page is a secure context');
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  check((await page.inputValue('#url')).startsWith('wss://'), 'the console connects over wss://', await page.inputValue('#url'));
  check(page.problems.length === 0, 'no console errors, exceptions, failed or external requests', page.problems);
  await context.close();

  await consoleTest();            // all of it: subscribe, rows, rate, pause, auth, phone

  const n = sockets.reduce((a, s) => a + s.received, 0);
  check(sockets.length > 0 && sockets.every(s => s.url.startsWith('wss://127.0.0.1:')), 'every WebSocket was wss://', sockets.map(s => s.url));
  check(n >= 20, 'frames received over wss://', n);
  result.wssFrames = n;
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

// ---- SSE: the transport switch set to SSE; the subscriptions go onto the
// URL of an EventSource (GET /sse), each change opens a new one. Routes:
// px -> prices as type price_tick (learnt from /asyncapi.json), qx -> qx as
// type qx. At each step test_console.py produces: "prices" 3 records to px
// ({"n":1..3}), "both" 2 to qx ({"q":1,2}) and 1 to px ({"n":4}).
async function sseTest() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const page = await openPage(context);
  const streams = [];           // the URL of each EventSource request
  page.on('request', r => { if (r.resourceType() === 'eventsource') streams.push(r.url()); });
  await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  await page.selectOption('#tr', 'SSE');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'subscribe to open a stream', null, { timeout: 5000 });
  check(streams.length === 0, 'SSE without a subscription opens no stream', streams);
  const status = () => page.textContent('#status');
  const connected = async what => {
    try {
      await page.waitForFunction(() => document.getElementById('status').textContent === 'connected · sse', null, { timeout: 10000 });
    } catch (e) { throw new Error(what + ': status ' + JSON.stringify(await status()) + ' streams ' + JSON.stringify(streams)); }
    check(true, what, await status());
  };
  const rowsOf = type => page.$$eval(`#messages > li.data[data-type="${type}"]`, els => els.map(el => ({
    ch: (el.querySelector('.ch') || {}).textContent, pos: (el.querySelector('.pos') || {}).textContent,
    body: el.querySelector('.json').textContent })).reverse());
  const waitRows = async (type, n) => {
    try {
      await page.waitForFunction(([t, k]) => document.querySelectorAll(`#messages > li.data[data-type="${t}"]`).length >= k, [type, n], { timeout: 10000 });
    } catch (e) { throw new Error(`never ${n} ${type} rows: ${JSON.stringify(await rowsOf(type))}`); }
    await page.waitForTimeout(500);         // more would be duplicates
    return rowsOf(type);
  };
  const channelsOf = u => new URL(u).searchParams.get('channels');

  await page.fill('#channel', 'prices');
  await page.click('#subscribe');
  await connected('subscribing opens the stream: "connected · sse"');
  check(streams.length === 1 && new URL(streams[0]).pathname === '/sse' && channelsOf(streams[0]) === 'prices',
    'one EventSource on /sse?channels=prices', streams);
  check((await page.textContent('#subs')).includes('prices'), 'the subscription is listed', await page.textContent('#subs'));
  await step('prices');
  let got = await waitRows('price_tick', 3);
  check(JSON.stringify(got.map(r => r.pos)) === '["px/0@0","px/0@1","px/0@2"]' && got.every(r => r.ch === 'prices')
    && got.map(r => r.body).join() === '{"n": 1},{"n": 2},{"n": 3}', 'the produced records show as data rows, in order', got);

  // another channel: a new stream with both (no replay: it starts live)
  await page.fill('#channel', 'qx');
  await page.click('#subscribe');
  await connected('subscribing to another channel reopens the stream');
  check(streams.length === 2 && channelsOf(streams[1]) === 'prices,qx', 'the new stream names both channels', streams);
  await step('both');
  const qx = await waitRows('qx', 2);
  got = await waitRows('price_tick', 4);
  check(JSON.stringify(qx.map(r => r.pos)) === '["qx/0@0","qx/0@1"]' && qx.every(r => r.ch === 'qx'),
    'records of the topic-named type show too', qx);
  check(got.length === 4 && got[3].pos === 'px/0@3', 'the earlier channel goes on, nothing repeated', got);
  // (not after the first records: they may come before msg/s has its first sample)
  const rate = await page.waitForFunction(() => parseFloat(document.getElementById('rate').dataset.rate) > 0, null, { timeout: 5000 })
    .then(() => true, () => false);
  check(rate, 'msg/s counts SSE records', await page.textContent('#rate'));

  // an unknown channel: kbridge refuses the stream (404); the reason shows
  await page.fill('#channel', 'no-such-channel');
  await page.click('#subscribe');
  await page.waitForFunction(() => document.getElementById('errors').textContent.includes('UNKNOWN_CHANNEL'), null, { timeout: 10000 });
  check(await page.isVisible('#errs') && await status() === 'refused', 'a refused stream shows UNKNOWN_CHANNEL and "refused"',
    [await page.textContent('#errors'), await status()]);
  check(await page.$$eval('#messages > li.err', els => els.length) >= 1, 'the error is in the message list too');
  await page.click('#subs li:has-text("no-such-channel") button');
  await connected('removing the unknown channel opens a working stream again');
  check(channelsOf(streams.at(-1)) === 'prices,qx', 'without it', streams.at(-1));
  await page.screenshot({ path: path.join(outDir, 'console-sse.png') });

  // back to WebSocket: the same subscriptions, re-sent
  const acks = await page.$$eval('#messages > li.ctl[data-type="ack"]', els => els.length);
  await page.selectOption('#tr', 'WebSocket');
  await page.waitForFunction(() => /^connected( · deflate)?$/.test(document.getElementById('status').textContent), null, { timeout: 10000 });
  await page.waitForFunction(n => document.querySelectorAll('#messages > li.ctl[data-type="ack"]').length >= n + 2, acks, { timeout: 5000 });
  check(true, 'switching back to WebSocket re-sends both subscriptions', await status());

  // a token goes onto the stream's URL as access_token (it has no other
  // way), and still into no page text or storage
  const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzc2UifQ.c2lnbmF0dXJl', n = streams.length;
  await page.fill('#token', TOKEN);
  await page.selectOption('#tr', 'SSE');
  for (let i = 0; i < 100 && streams.length === n; i++) await page.waitForTimeout(50);
  check(streams.length === n + 1 && new URL(streams[n]).searchParams.get('access_token') === TOKEN,
    'with a token the stream\'s URL carries access_token', streams.slice(n));
  const leak = await page.evaluate(t => ({ page: document.documentElement.outerHTML.includes(t), url: location.href.includes(t),
    storage: JSON.stringify([{ ...localStorage }, { ...sessionStorage }]).includes(t) }), TOKEN);
  check(!leak.page && !leak.url && !leak.storage, 'the token is in no page text, page URL or storage', leak);
  await page.waitForFunction(() => ['connected · sse', 'refused'].includes(document.getElementById('status').textContent), null, { timeout: 10000 });
  result.tokenOutcome = await status();

  // Chromium logs the streams the console closed to open new ones (aborted)
  // and the refused one with the fetch asking why (404s).
  const problems = page.problems.filter(p => !/^request failed: \S+\/sse\?\S+ net::ERR_ABORTED$|^console: Failed to load resource: .* 404 \(Not Found\)$/.test(p));
  result.expectedErrors = page.problems.filter(p => !problems.includes(p));
  check(problems.length === 0, 'no other console errors, exceptions, failed or external requests', problems);
}

// The stats panel of a kbridge --workers 2 shows "2/2" workers running.
async function workersTest() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await openPage(context);
  const resp = await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  check(resp.status() === 200, 'GET / is 200', resp.status());
  await page.waitForSelector('#stats dd[data-k="workers"]', { timeout: 8000 });
  result.workers = (await page.textContent('#stats dd[data-k="workers"]')).trim();
  check(/^2\/2\b/.test(result.workers), 'stats panel shows 2/2 workers', result.workers);
  await page.screenshot({ path: path.join(outDir, 'console-workers.png'), fullPage: false });
  check(page.problems.length === 0, 'no console errors, exceptions, failed or external requests', page.problems);
}

// The Publish card: the channel list comes from /asyncapi.json; a publish
// shows its ack (topic partition offset) and is the record the page then
// receives on the subscribed channel; bad JSON never leaves the page; a
// channel that is not a publish channel shows the server's error.
async function publishTest() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await openPage(context);
  const sent = [];
  page.on('websocket', w => w.on('framesent', f => sent.push(String(f.payload))));
  await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#pub-list option')].some(o => o.value === 'orders'), null, { timeout: 8000 });
  check(await page.inputValue('#pub-ch') === 'orders', 'the publish channels from /asyncapi.json fill the channel field', await page.inputValue('#pub-ch'));
  await page.fill('#channel', 'orders');
  await page.click('#subscribe');
  await page.waitForSelector('#messages > li.ctl[data-type="ack"]', { timeout: 5000 });

  await page.fill('#pub-key', 'o-1');
  await page.fill('#pub-data', '{"item": "BTC", "qty": 2}');
  await page.click('#pub-form button');
  await page.waitForFunction(() => document.getElementById('pub-out').className !== '', null, { timeout: 15000 });
  const ack = await page.textContent('#pub-out');
  check(await page.getAttribute('#pub-out', 'class') === 'up' && /^orders-topic \d+ \d+$/.test(ack), 'the ack shows topic, partition and offset', ack);
  const msg = JSON.parse(sent.find(f => f.includes('"publish"')) || 'null');
  check(msg && msg.type === 'publish' && msg.channel === 'orders' && msg.key === 'o-1' && msg.data.qty === 2 && /^p\d+$/.test(msg.id),
    'the publish message carries channel, parsed data, key and a p<n> id', msg);
  const [, part, off] = ack.split(' ');
  await page.waitForFunction(([p, o]) => [...document.querySelectorAll('#messages > li.data')].some(li => li.textContent.includes('orders-topic/' + p + '@' + o)),
    [part, off], { timeout: 10000 });
  check(true, 'the record comes back on the subscribed channel at the acknowledged place');

  const before = sent.length;
  await page.fill('#pub-data', '{"qty": ');
  await page.click('#pub-form button');
  check(await page.getAttribute('#pub-out', 'class') === 'down' && (await page.textContent('#pub-out')).startsWith('data: ') && sent.length === before,
    'invalid JSON is refused in the page, nothing sent', await page.textContent('#pub-out'));

  await page.fill('#pub-ch', 'nope');
  await page.fill('#pub-data', '1');
  await page.click('#pub-form button');
  await page.waitForFunction(() => document.getElementById('pub-out').textContent.startsWith('UNKNOWN_CHANNEL'), null, { timeout: 5000 });
  check(await page.getAttribute('#pub-out', 'class') === 'down', 'an error reply is shown in the card', await page.textContent('#pub-out'));
  await page.screenshot({ path: path.join(outDir, 'console-publish.png') });
  check(page.problems.length === 0, 'no console errors, exceptions, failed or external requests', page.problems);
}

try {
  if (!base || !outDir || !['console', 'docs', 'state', 'tls', 'workers', 'sse', 'publish'].includes(mode)) throw new Error('usage: node console.mjs console|docs|state|workers|sse|publish BASE_URL OUT_DIR | tls BASE_URL OUT_DIR SPKI');
  if (mode === 'tls') await tlsTest();
  else {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20000 });
    const tests = { console: consoleTest, docs: docsTest, state: stateTest, workers: workersTest, sse: sseTest, publish: publishTest };
    await tests[mode]();
  }
  await finish();
} catch (e) {
  await finish(e);
}
