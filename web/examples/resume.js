// kbridge reconnect-and-resume client for the browser (no dependencies).
//
//   const feed = kbridgeFeed('wss://host/ws', 'dashboard', onRecord, onSnapshot);
//   feed.close();
//
// The first subscribe asks for a snapshot (the newest value of each key) and
// then gets live records. The feed remembers the last offset it saw of every
// "topic:partition" (and, from the ack, where each partition stood when it
// subscribed, so quiet partitions are covered too); after a reconnect (also to another or a restarted
// kbridge) it subscribes with "resume", so kbridge replays exactly the records
// missed and continues live: no gap, no duplicate. If Kafka no longer holds
// them (RESUME_GAP) it asks for a fresh snapshot. To survive a page reload,
// save feed.positions ({"topic:partition": offset}) with your own state and
// pass them back as the last argument.
function kbridgeFeed(url, channel, onRecord, onSnapshot, positions = {}) {
  let ws, timer, delay = 500, closed = false;

  function connect() {
    ws = new WebSocket(url);
    ws.onopen = () => {
      const sub = { type: 'subscribe', channel };
      if (Object.keys(positions).length) sub.resume = positions; else sub.snapshot = true;
      ws.send(JSON.stringify(sub));
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if ('offset' in m) {                            // a data message: one Kafka record
        positions[m.topic + ':' + m.partition] = m.offset;
        onRecord(m);
      } else if (m.type === 'ack') {
        delay = 500;                                  // subscribed: reset the backoff
        for (const [tp, off] of Object.entries(m.positions || {}))
          if (!(tp in positions)) positions[tp] = off; // partitions that sent nothing yet
      } else if (m.type === 'snapshot') {
        onSnapshot(m.data);                           // {key: newest value, ...}
      } else if (m.code === 'RESUME_GAP') {           // missed records are gone from Kafka
        ws.send(JSON.stringify({ type: 'refresh', channel }));
      } else if (m.type === 'error') {
        console.warn('kbridge:', m.code, m.message);  // e.g. SLOW_CONSUMER: records dropped
      }
    };
    ws.onclose = () => {                              // also when a connect fails
      if (closed) return;
      timer = setTimeout(connect, delay * (0.5 + Math.random() / 2)); // with jitter
      delay = Math.min(delay * 2, 30000);             // exponential backoff, capped at 30 s
    };
  }
  connect();
  return { positions, close() { closed = true; clearTimeout(timer); ws.close(); } };
}
