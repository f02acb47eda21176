// publish_command.js - a client that sends commands the way the Dashboard
// Server plan's web client would (docs/protocol.md#publishing; the plan's
// DashboardClient in dashboard-client.ts): it connects to
// `${url}?type=web&format=msgpack` with binaryType 'arraybuffer', sends
// {"type":"subscribe","channels":[...]} as a JSON text frame on open,
// decodes every server frame with @msgpack/msgpack, and once the first
// snapshot arrived sends each command given on the command line as a JSON
// text frame (JSON.stringify of the object), e.g. the plan's
// {"type":"place_order","payload":{...},"id":"o1"}.
//
//   node publish_command.js URL CHANNELS MSG_JSON [MSG_JSON...]
//
// URL is the ws:// URL without a query; CHANNELS a comma list. Every
// MSG_JSON must carry an "id". Output: one JSON line per server message
// ({"event":"message","msg":...}), then {"event":"done","answered":N,
// "closed":...} once every id got its ack or error, or after 10 s.
'use strict';
const WebSocket = require('ws');
const msgpack = require('@msgpack/msgpack');

const [url, channelsArg, ...rawMsgs] = process.argv.slice(2);
const commands = rawMsgs.map((m) => JSON.parse(m));
const pending = new Set(commands.map((c) => c.id));

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

class DashboardClient {
  constructor() { this.ws = null; this.currentState = {}; this.sent = false; this.closed = null; }

  connect(base, clientType = 'web') {
    const wsUrl = `${base}?type=${clientType}&format=msgpack`;
    this.ws = new WebSocket(wsUrl);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => {
      this.subscribe(channelsArg.split(',').filter(Boolean));
    };
    this.ws.onmessage = (event) => {
      let message;
      if (typeof event.data === 'string') {
        message = { text_frame: event.data };        // the plan's client would fail here
      } else {
        const buffer = new Uint8Array(event.data);
        message = msgpack.decode(buffer);
      }
      this.handleMessage(message);
    };
    this.ws.onerror = (error) => { out({ event: 'ws_error', error: String(error.message || error) }); };
    this.ws.onclose = (ev) => { this.closed = { code: ev.code, reason: ev.reason }; finish(); };
  }

  subscribe(channels) {
    this.ws.send(JSON.stringify({ type: 'subscribe', channels }));
  }

  // What a page's "place order" button does: a command as JSON text.
  placeOrder(order, id) {
    this.ws.send(JSON.stringify({ type: 'place_order', payload: order, id }));
  }

  send(message) {
    this.ws.send(JSON.stringify(message));
  }

  handleMessage(message) {
    out({ event: 'message', msg: message });
    if (message.type === 'snapshot') {
      if (message.data) this.currentState = message.data;
      if (!this.sent) {
        this.sent = true;
        for (const c of commands) {
          if (c.type === 'place_order' && c.payload !== undefined && Object.keys(c).length === 3) {
            this.placeOrder(c.payload, c.id);
          } else {
            this.send(c);
          }
        }
      }
    } else if ((message.type === 'ack' || message.type === 'error') && pending.has(message.id)) {
      pending.delete(message.id);
      if (pending.size === 0) finish();
    }
  }
}

let done = false;
function finish() {
  if (done) return;
  done = true;
  out({ event: 'done', answered: commands.length - pending.size, closed: client.closed });
  try { client.ws.close(1000); } catch (e) { /* already closed */ }
  setTimeout(() => process.exit(0), 200);
}

const client = new DashboardClient();
client.connect(url, 'web');
setTimeout(finish, 10000);
