// kbridge Server-Sent Events client for the browser (no dependencies).
//
//   const feed = kbridgeSse('https://host', ['dashboard'], ['trade_data'], onRecord, onError);
//   feed.close();
//
// GET /sse sends the records of the channels named in its URL (fixed for the
// connection: to change them, close the feed and open another) as events
// named after their message type, e.g. "trade_data". There is no generic
// "message" event, so each type needs its own listener. An event's data is
// the JSON of the WebSocket data message ({type, channel, key, seq, topic,
// partition, offset, data, ...}); its id is a position token.
//
// Reconnecting is EventSource's own job: when the stream ends (kbridge
// restarted, a proxy cut it) the browser waits the server's "retry: 1000"
// and reconnects with the last id in a Last-Event-ID header, and kbridge
// continues right after it: no gap, no duplicate, also on another or a
// restarted instance. The stream starts with an id alone, so even a quiet
// channel has a position to resume from.
function kbridgeSse(base, channels, types, onRecord, onError) {
  const es = new EventSource(base + '/sse?channels=' + channels.map(encodeURIComponent).join(','));
  for (const type of types)
    es.addEventListener(type, e => onRecord(JSON.parse(e.data)));
  // "error" is two things. kbridge's own error event carries data:
  // {"type":"error","code":"SLOW_CONSUMER"|"RESUME_GAP"|"TOKEN_EXPIRED",...}.
  // The browser's, when the connection is lost, has none: EventSource then
  // retries by itself, unless the server refused it with an HTTP error
  // (404 unknown channel, 401/403, 429, 503 full or shutting down): then
  // readyState is CLOSED and this feed is over.
  es.addEventListener('error', e => {
    if (e.data !== undefined) onError(JSON.parse(e.data));
    else if (es.readyState === EventSource.CLOSED) onError({ type: 'error', code: 'CLOSED', message: 'connection refused' });
  });
  return { close: () => es.close() };
}
