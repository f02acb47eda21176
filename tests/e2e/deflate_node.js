// deflate_node.js - a Node `ws` client with permessage-deflate on, for
// tests/e2e/test_deflate.py: a second WebSocket implementation that
// negotiates the extension, inflates kbridge's messages and compresses its own.
//
//   node deflate_node.js URL RECORDS
//
// Prints {"open":true,...} once the upgrade is done (the test then produces
// RECORDS records), sends a JSON ping with a 2,000-byte id (above ws's
// 1,024-byte threshold, so ws compresses it), and when RECORDS data messages
// and the pong have arrived closes with 1000 and prints one result line:
// {"ok":true,"answer":<the 101's Sec-WebSocket-Extensions>,"extensions":"permessage-deflate",
//  "params":{...},"messages":[...],"code":N}. Exits 3 after 15 s.
'use strict';
const WebSocket = require('ws');

const [url, want] = process.argv.slice(2);
const ws = new WebSocket(url, { perMessageDeflate: true });
const messages = [];
let answer = null, done = false;

function out(obj) {
  if (done) return;
  done = true;
  console.log(JSON.stringify(obj));
  process.exit(obj.ok ? 0 : 3);
}

const timer = setTimeout(() => out({ ok: false, error: 'timeout', messages }), 15000);
const PING_ID = 'node-' + 'n'.repeat(2000);

ws.on('upgrade', (res) => { answer = res.headers['sec-websocket-extensions'] || null; });
ws.on('open', () => {
  console.log(JSON.stringify({ open: true, extensions: ws.extensions }));
  ws.send(JSON.stringify({ type: 'ping', id: PING_ID }));
});
ws.on('message', (data, isBinary) => {
  const m = JSON.parse(data.toString());
  messages.push(m);
  const records = messages.filter((x) => 'offset' in x).length;
  const pong = messages.some((x) => x.type === 'pong' && x.id === PING_ID);
  if (records >= Number(want) && pong) ws.close(1000);
});
ws.on('close', (code) => {
  clearTimeout(timer);
  // ws.extensions is the names joined; the parameters ws accepted are on
  // its PerMessageDeflate object.
  const pmd = ws._extensions['permessage-deflate'];
  out({ ok: true, answer, extensions: ws.extensions, params: pmd ? pmd.params : null,
    messages, code });
});
ws.on('error', (e) => out({ ok: false, error: e.message, messages }));
