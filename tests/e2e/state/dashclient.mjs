// dashclient.mjs - a state-dialect client of kbridge's own, written to do
// exactly what the Dashboard Server plan's web client does
// (docs/protocol.md#state-dialect): connect with ?type=web&format=msgpack,
// send {"type":"subscribe","channels":[...]} as a JSON text frame on open,
// decode every frame with @msgpack/msgpack, replace the whole state with
// `data` on a snapshot and apply `changes` on an update with setNestedValue
// (split the path on '.', create missing objects where the value is falsy,
// set the leaf).
//
//   node dashclient.mjs URL [--channels a,b,c] [--ms N] [--no-subscribe] [--verbose]
//
// URL is the whole ws:// URL with its query (the test builds it the plan's
// way). With format=json in the URL, text frames are JSON.parse'd instead.
// Commands on stdin, one per line:
//   send {"type":"refresh"}   sends that JSON text frame
//   dump                      prints the report line now and goes on
//   stop                      prints the report line and exits
// --ms N stops by itself after N ms. The report is one JSON line:
//   {"event":"final","state":...,"snapshots":N,"updates":N,"decode_errors":N,
//    "apply_errors":N,"seqs":[...],"types":{type:count},"timestamps":{kind:count},
//    "errors":[error messages],"problems":[first few decode/apply problems],
//    "ui_errors":N,"ui":{"balance":..,"pnl":..},"closed":null|{code,reason},"open":bool}
// After each snapshot and update it runs what the plan's page does with the
// state (the balance of state.account, the sum of the positions'
// unrealized_pnl, each only when that channel is truthy); an exception
// there counts in ui_errors.
'use strict';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import * as msgpack from '@msgpack/msgpack';

const argv = process.argv.slice(2);
const url = argv[0];
let channels = ['market_data', 'orders', 'positions', 'account'];
let stopAfter = 0;
let subscribeOnOpen = true;
let verbose = false;
for (let i = 1; i < argv.length; i++) {
  if (argv[i] === '--channels') channels = argv[++i].split(',').filter(Boolean);
  else if (argv[i] === '--ms') stopAfter = Number(argv[++i]);
  else if (argv[i] === '--no-subscribe') subscribeOnOpen = false;
  else if (argv[i] === '--verbose') verbose = true;
  else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
}
const useJson = /[?&]format=json(&|$)/.test(url);

const report = {
  event: 'final', state: {}, snapshots: 0, updates: 0, decode_errors: 0, apply_errors: 0,
  seqs: [], types: {}, timestamps: {}, errors: [], problems: [], closed: null, open: false,
  ui_errors: 0, ui: {},
};
function problem(what) {
  if (report.problems.length < 20) report.problems.push(String(what).slice(0, 500));
  if (verbose) console.error(what);
}

// The plan's client, method for method.
class DashboardClient {
  constructor() { this.currentState = {}; this.onStateUpdate = undefined; }

  handleMessage(message) {
    switch (message.type) {
      case 'snapshot':
        if (message.data) {
          this.currentState = message.data;
          this.notifyUpdate();
        }
        break;
      case 'update':
        if (message.changes) {
          this.applyChanges(message.changes);
          this.notifyUpdate();
        }
        break;
      case 'error':
        break;
    }
  }

  notifyUpdate() {
    if (this.onStateUpdate) {
      try {
        this.onStateUpdate(this.currentState);
      } catch (e) {
        report.ui_errors++;
        problem(`ui: ${e.message}: ${JSON.stringify(this.currentState).slice(0, 300)}`);
      }
    }
  }

  onUpdate(callback) { this.onStateUpdate = callback; }

  applyChanges(changes) {
    for (const [path, value] of Object.entries(changes)) {
      this.setNestedValue(this.currentState, path, value);
    }
  }

  // Class bodies are strict mode, as in the plan's TypeScript: setting a
  // property on a number or string throws a TypeError.
  setNestedValue(obj, path, value) {
    const keys = path.split('.');
    let current = obj;
    for (let i = 0; i < keys.length - 1; i++) {
      const key = keys[i];
      if (!current[key]) {
        current[key] = {};
      }
      current = current[key];
    }
    current[keys[keys.length - 1]] = value;
  }
}

const client = new DashboardClient();
// What the plan's page does on every state change.
client.onUpdate((state) => {
  if (state.account) {
    report.ui.balance = `$${state.account.total_balance.toFixed(2)}`;
  }
  if (state.positions) {
    const totalPnl = Object.values(state.positions).reduce((sum, pos) => sum + pos.unrealized_pnl, 0);
    report.ui.pnl = `$${totalPnl.toFixed(2)}`;
  }
});
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';

function timestampKind(t) {
  if (t === undefined) return 'absent';
  if (t instanceof Date) return isNaN(t.getTime()) ? 'bad-date' : 'date';
  if (typeof t === 'string') return isNaN(Date.parse(t)) ? 'bad-string' : 'string';
  return typeof t;
}

function finish() {
  report.state = client.currentState;
  report.open = ws.readyState === WebSocket.OPEN;
  process.stdout.write(JSON.stringify(report) + '\n');
}

ws.on('open', () => {
  process.stdout.write(JSON.stringify({ event: 'open' }) + '\n');
  if (subscribeOnOpen) ws.send(JSON.stringify({ type: 'subscribe', channels }));
});

ws.on('message', (data, isBinary) => {
  let message;
  try {
    if (useJson) {
      if (isBinary) throw new Error('binary frame on a JSON connection');
      message = JSON.parse(data.toString('utf8'));
    } else {
      // The plan: new Uint8Array(event.data) of an ArrayBuffer; a text
      // frame would reach it as a string and fail to decode.
      if (!isBinary) throw new Error(`text frame on a msgpack connection: ${data.toString('utf8').slice(0, 200)}`);
      message = msgpack.decode(new Uint8Array(data));
    }
  } catch (e) {
    report.decode_errors++;
    problem(`decode: ${e.message}`);
    return;
  }
  const type = message && message.type;
  report.types[type] = (report.types[type] || 0) + 1;
  if (type === 'snapshot' || type === 'update') {
    report.seqs.push(message.seq);
    const kind = timestampKind(message.timestamp);
    report.timestamps[kind] = (report.timestamps[kind] || 0) + 1;
    if (type === 'snapshot') report.snapshots++; else report.updates++;
  } else if (type === 'error') {
    report.errors.push(message);
  }
  if (verbose) console.error(JSON.stringify(message).slice(0, 300));
  try {
    client.handleMessage(message);
  } catch (e) {
    report.apply_errors++;
    problem(`apply seq ${message.seq}: ${e.message}: ${JSON.stringify(message.changes).slice(0, 300)}`);
  }
});

ws.on('close', (code, reason) => {
  report.closed = { code, reason: reason.toString() };
});

ws.on('error', (e) => {
  problem(`websocket: ${e.message}`);
  if (ws.readyState !== WebSocket.OPEN) { finish(); process.exit(1); }
});

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  line = line.trim();
  if (line.startsWith('send ')) {
    ws.send(line.slice(5));
  } else if (line === 'dump') {
    finish();
  } else if (line === 'stop') {
    finish();
    ws.terminate();
    process.exit(0);
  }
});
// stdin closed (the test went away): stop, unless --ms decides.
rl.on('close', () => {
  if (stopAfter > 0) return;
  finish();
  ws.terminate();
  process.exit(0);
});

if (stopAfter > 0) {
  setTimeout(() => { finish(); ws.terminate(); process.exit(0); }, stopAfter);
}
