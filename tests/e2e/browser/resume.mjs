// resume.mjs - runs web/examples/resume.js (the README's reconnect-and-resume
// example) in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core, which never downloads a browser), driven step by step by
// tests/e2e/test_browser_resume.py.
//
//   node resume.mjs PAGE_URL OUT_DIR NAME
//
// PAGE_URL is a page that loads resume.js and calls kbridgeFeed(), reporting
// each record with kbRecord(topic, partition, offset, i, seq) and each
// snapshot with kbSnapshot(data) (both defined here, see tapPage). Commands arrive on stdin, one a line;
// each gets one reply line {"reply":"<command>",...} on stdout:
//
//   open              load the page; wait for the first subscription's ack
//   state             records so far, last offset per partition, sockets
//   break             close the page's current WebSocket (ws.close())
//   reload            reload the page; wait for its subscription's ack
//   wait N MS         wait until N records arrived (at most MS ms)
//   waitsnap MS       wait until a snapshot arrived
//   finish            screenshot OUT_DIR/NAME.png, the result in OUT_DIR/NAME.json
//                     ({"ok":...,"records":[[topic,partition,offset,i,seq],...],
//                     "controls":[...],"snapshots":[...],"sockets":N,...}); the
//                     last line printed is {"ok":...,"file":...}
import { finisher, start } from './steps.mjs';

const [pageUrl, outDir, name] = process.argv.slice(2);

const records = [];      // [topic, partition, offset, i, seq|null] in arrival order
const controls = [];     // every non-data server message, parsed
const snapshots = [];
const sent = [];         // every message the page sent, parsed
const problems = [];
let refused = 0, sockets = 0, browser, page;

const finish = finisher(outDir, name, () => ({
  result: { records, controls, snapshots, sent, problems, refused, sockets }, page, browser, drain,
}));

const reply = (cmd, extra) => console.log(JSON.stringify(Object.assign({ reply: cmd }, extra)));

// Collects what the page sees in window.__got, in order: ['r', topic,
// partition, offset, i, seq] per record the example hands to onRecord (the
// page calls kbRecord), ['c', msg] per control message on any of its
// WebSockets, ['o', msg] per message the page sends, ['s', data] per
// snapshot, ['w'] per WebSocket opened. Node
// drains it; on pagehide (a reload) what is left goes to sessionStorage and
// the next page starts with it, so nothing is lost in between. The example
// itself is untouched.
function tapPage() {
  window.__got = JSON.parse(sessionStorage.getItem('kb-got') || '[]');
  sessionStorage.removeItem('kb-got');
  addEventListener('pagehide', () => sessionStorage.setItem('kb-got', JSON.stringify(window.__got)));
  window.kbRecord = (...r) => window.__got.push(['r', ...r]);
  window.kbSnapshot = data => window.__got.push(['s', data]);
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    window.__sockets.push(ws);
    window.__got.push(['w']);
    const send = ws.send.bind(ws);
    ws.send = d => { window.__got.push(['o', JSON.parse(d)]); send(d); };
    ws.addEventListener('message', ev => {
      const m = JSON.parse(ev.data);
      if (!('offset' in m)) window.__got.push(['c', m]);
    });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) window.WebSocket[k] = Native[k];
}

async function drain() {
  let got;
  try {
    got = await page.evaluate(() => { const g = window.__got || []; window.__got = []; return g; });
  } catch (e) {
    return;                 // navigating: the next page carries the rest over
  }
  for (const g of got) {
    if (g[0] === 'r') records.push(g.slice(1));
    else if (g[0] === 'c') controls.push(g[1]);
    else if (g[0] === 's') snapshots.push(g[1]);
    else if (g[0] === 'o') sent.push(g[1]);
    else if (g[0] === 'w') sockets++;
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

const acks = () => controls.filter(c => c.type === 'ack').length;

async function command(line) {
  const [cmd, ...args] = line.trim().split(' ');
  if (cmd === 'open') {
    const n = acks();
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });
    await until(() => acks() > n, 10000, 'the first ack');
    reply(cmd, { acks: acks() });
  } else if (cmd === 'state') {
    await drain();
    const last = {};
    for (const r of records) last[r[0] + ':' + r[1]] = r[2];
    reply(cmd, { records: records.length, last, sockets, acks: acks(), snapshots: snapshots.length });
  } else if (cmd === 'break') {
    const state = await page.evaluate(() => {
      const ws = window.__sockets[window.__sockets.length - 1];
      const was = ws.readyState;
      ws.close();
      return was;
    });
    reply(cmd, { was: state });
  } else if (cmd === 'reload') {
    const n = acks();
    await page.reload({ waitUntil: 'load', timeout: 10000 });
    await until(() => acks() > n, 10000, 'an ack after the reload');
    reply(cmd);
  } else if (cmd === 'wait') {
    const n = +args[0];
    try { await until(() => records.length >= n, +args[1], n + ' records'); } catch (e) { /* reported */ }
    reply(cmd, { records: records.length });
  } else if (cmd === 'waitsnap') {
    try { await until(() => snapshots.length > 0, +args[0], 'a snapshot'); } catch (e) { /* reported */ }
    reply(cmd, { snapshots: snapshots.length });
  } else if (cmd === 'finish') {
    await finish();
  } else {
    throw new Error('unknown command ' + JSON.stringify(line));
  }
}

await start('usage: node resume.mjs PAGE_URL OUT_DIR NAME', tapPage, (b, p) => { browser = b; page = p; },
  text => {
    // Reconnect attempts while kbridge restarts are refused: expected.
    if (/WebSocket connection to .* failed/.test(text)) refused++;
    else problems.push('console: ' + text);
  }, problems, command, finish);
