// kbridge publishing client for the browser (no dependencies).
//
//   const pub = kbridgePublisher('wss://host/ws', token);   // token: optional
//   const at = await pub.publish('orders', { item: 'BTC', qty: 2 }, { key: 'o-17' });
//   // at = {topic, partition, offset}: where Kafka wrote the record
//   await pub.command('place_order', { item: 'BTC', qty: 2 });
//   pub.close();
//
//   const at2 = await kbridgePost('https://host', 'orders', { qty: 1 }, { key: 'o-18', token });
//
// A publish resolves once Kafka acknowledged the record, with the place the
// record has in Kafka: the same topic, partition and offset its data message
// carries, so a page subscribed to a channel that reads the topic can
// recognise its own write when it comes back (it may come before or after
// the ack). It rejects with the error message kbridge sent ({code, message}):
// BAD_REQUEST, UNKNOWN_CHANNEL, UNAUTHORIZED, RATE_LIMITED (too many
// publishes waiting: wait for an ack and send again) or PUBLISH_FAILED.
//
// When the connection drops, publishes still waiting reject with code
// CLOSED. Kafka may have written them anyway: only an ack says it did, and
// only an error says it did not. Send again only what is safe to write twice
// (give records an id of their own). Publishes made while the socket is
// (re)connecting wait for it; the next connection is opened on demand.
function kbridgePublisher(url, token) {
  let ws = null, opening = null, next = 1;
  const waiting = new Map();           // id -> {resolve, reject}

  function open() {
    if (opening) return opening;
    opening = new Promise((resolve, reject) => {
      const sock = new WebSocket(url);
      sock.onopen = () => {
        if (token) sock.send(JSON.stringify({ type: 'auth', token }));   // first: what follows is judged with it
        ws = sock;
        resolve(sock);
      };
      sock.onmessage = ev => {
        const m = JSON.parse(ev.data);
        const w = waiting.get(m.id);
        if (!w || m.type !== 'ack' && m.type !== 'error') return;   // data messages, other replies
        waiting.delete(m.id);
        if (m.type === 'ack') w.resolve({ topic: m.topic, partition: m.partition, offset: m.offset });
        else w.reject(m);
      };
      sock.onclose = ev => {
        if (ws !== sock) reject(new Error('cannot connect: ' + ev.code));
        ws = opening = null;
        for (const w of waiting.values()) w.reject({ type: 'error', code: 'CLOSED', message: 'connection closed before the answer' });
        waiting.clear();
      };
    });
    return opening;
  }

  // Sends one message (id added) and waits for its ack or error.
  async function request(msg) {
    const sock = ws || await open();
    msg.id = 'p' + next++;
    return new Promise((resolve, reject) => {
      waiting.set(msg.id, { resolve, reject });
      sock.send(JSON.stringify(msg));
    });
  }

  return {
    // data: any JSON value (its JSON text is the record's value).
    // opts: {key, headers: {name: 'value'}}.
    publish: (channel, data, opts = {}) => request({ type: 'publish', channel, data, ...opts }),
    // A --command type: payload becomes the record.
    command: (type, payload, opts = {}) => request({ type, payload, ...opts }),
    close: () => { if (ws) ws.close(1000); },
  };
}

// One publish over HTTP: POST /publish/CHANNEL with the JSON body. Resolves
// with {topic, partition, offset}; rejects with {status, error}.
async function kbridgePost(base, channel, data, { key, token } = {}) {
  const url = base + '/publish/' + encodeURIComponent(channel) + (key !== undefined ? '?key=' + encodeURIComponent(key) : '');
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(data) });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw { status: r.status, error: body.error };
  return body;
}
