// sse.mjs - runs web/examples/sse.js (the Server-Sent Events example) in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core,
// which never downloads a browser), driven step by step by
// tests/e2e/test_sse_browser.py. The connections are cut and kbridge is
// restarted by the test, not here: this script only watches the page.
//
//   node sse.mjs PAGE_URL OUT_DIR NAME
//
// PAGE_URL is a page that loads sse.js and calls kbridgeSse(), reporting each
// record with kbRecord(topic, partition, offset, i, seq) and each error the
// example hands to its onError with kbError(err) (both defined here, see
// tapPage). Commands arrive on stdin, one a line; each gets one reply line
// {"reply":"<command>",...} on stdout:
//
//   open              load the page; wait until its EventSource is open
//   load              load the page (for a stream that never opens)
//   waitclosed MS     wait until the page's EventSource is CLOSED (refused for good)
//   state             records so far, last offset per partition, opens
//   waitopen N MS     wait until the page's EventSources opened N times in all
//   wait N MS         wait until N records arrived (at most MS ms)
//   finish            screenshot OUT_DIR/NAME.png, the result in OUT_DIR/NAME.json
//                     ({"ok":...,"records":[[topic,partition,offset,i,seq],...],
//                     "errors":[...],"events":[...],"sources":N,"opens":N,...});
//                     the last line printed is {"ok":...,"file":...}
import { finisher, start } from './steps.mjs';

const [pageUrl, outDir, name] = process.argv.slice(2);

const records = [];      // [topic, partition, offset, i, seq|null] in arrival order
const errors = [];       // what the example handed to onError
const events = [];       // the EventSource's own open and error events: ['open'] | ['error', data|null, readyState]
const problems = [];
const netErrors = [];     // the browser's console errors about the stream's URL (refused, 404, ...)
let refused = 0, sources = 0, opens = 0, browser, page;

const finish = finisher(outDir, name, () => ({
  result: { records, errors, events, problems, netErrors, refused, sources, opens }, page, browser, drain,
}));

const reply = (cmd, extra) => console.log(JSON.stringify(Object.assign({ reply: cmd }, extra)));

// Collects what the page sees in window.__got, in order: ['r', topic,
// partition, offset, i, seq] per record the example hands to onRecord (the
// page calls kbRecord), ['x', err] per error it hands to onError, ['w'] per
// EventSource constructed, ['o'] per open event, ['e', data|null,
// readyState] per error event (data only when kbridge sent one). Node
// drains it. The example itself is untouched: only EventSource is wrapped,
// to watch it.
function tapPage() {
  window.__got = [];
  window.kbRecord = (...r) => window.__got.push(['r', ...r]);
  window.kbError = e => window.__got.push(['x', e]);
  const Native = window.EventSource;
  window.__sources = [];
  window.EventSource = function (url, init) {
    const es = new Native(url, init);
    window.__sources.push(es);
    window.__got.push(['w']);
    es.addEventListener('open', () => window.__got.push(['o']));
    es.addEventListener('error', e => window.__got.push(['e', e.data === undefined ? null : e.data, es.readyState]));
    return es;
  };
  window.EventSource.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSED']) window.EventSource[k] = Native[k];
}

async function drain() {
  let got;
  try {
    got = await page.evaluate(() => { const g = window.__got || []; window.__got = []; return g; });
  } catch (e) {
    return;
  }
  for (const g of got) {
    if (g[0] === 'r') records.push(g.slice(1));
    else if (g[0] === 'x') errors.push(g[1]);
    else if (g[0] === 'w') sources++;
    else if (g[0] === 'o') { opens++; events.push(['open']); }
    else if (g[0] === 'e') events.push(['error', g[1], g[2]]);
  }
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    await drain();
    if (pred()) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise(r => setTimeout(r, 30));
  }
}

async function command(line) {
  const [cmd, ...args] = line.trim().split(' ');
  if (cmd === 'open') {
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });
    await until(() => opens > 0, 10000, 'the EventSource to open');
    reply(cmd, { opens });
  } else if (cmd === 'load') {
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });
    reply(cmd);
  } else if (cmd === 'waitclosed') {
    const closed = () => events.some(e => e[0] === 'error' && e[2] === 2);
    try { await until(closed, +args[0], 'CLOSED'); } catch (e) { /* reported */ }
    reply(cmd, { closed: closed(), events });
  } else if (cmd === 'state') {
    await drain();
    const last = {};
    for (const r of records) last[r[0] + ':' + r[1]] = r[2];
    const readyState = await page.evaluate(() => window.__sources.map(s => s.readyState));
    reply(cmd, { records: records.length, last, sources, opens, errors: errors.length, readyState });
  } else if (cmd === 'waitopen') {
    try { await until(() => opens >= +args[0], +args[1], args[0] + ' opens'); } catch (e) { /* reported */ }
    reply(cmd, { opens });
  } else if (cmd === 'wait') {
    const n = +args[0];
    try { await until(() => records.length >= n, +args[1], n + ' records'); } catch (e) { /* reported */ }
    reply(cmd, { records: records.length });
  } else if (cmd === 'finish') {
    await finish();
  } else {
    throw new Error('unknown command ' + JSON.stringify(line));
  }
}

await start('usage: node sse.mjs PAGE_URL OUT_DIR NAME', tapPage, (b, p) => { browser = b; page = p; },
  (text, where) => {
    // Reconnects while kbridge restarts are refused (the proxy closes the
    // browser's connection when kbridge does not answer), a refused stream
    // is logged with its status: counted and kept, the test judges them.
    if (/\/sse\?|EventSource/.test(text + ' ' + where)) { refused++; netErrors.push(text + ' ' + where); }
    else problems.push('console: ' + text);
  }, problems, command, finish);
