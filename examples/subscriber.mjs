// A browser-style client in Node: the official `centrifuge` client subscribed to one
// channel. Press Enter to drop the connection and Enter again to reconnect; the
// subscription then recovers what was published while it was away.
//
//   node examples/subscriber.mjs [channel] [websocket URL]
import { createInterface } from 'node:readline';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const channel = process.argv[2] ?? 'news';
const url = process.argv[3] ?? 'ws://127.0.0.1:8000/connection/websocket';

const client = new Centrifuge(url, { websocket: WebSocket });
client.on('connected', (ctx) => console.log(`connected as ${ctx.client}`));
client.on('disconnected', (ctx) => console.log(`disconnected: ${ctx.reason} (${ctx.code})`));

const subscription = client.newSubscription(channel);
subscription.on('subscribed', (ctx) => {
  const position = ctx.streamPosition ? ` at offset ${ctx.streamPosition.offset}` : '';
  console.log(`subscribed to ${channel}${position}, recovered: ${ctx.recovered}`);
});
subscription.on('publication', (ctx) => console.log(`publication ${ctx.offset}: ${JSON.stringify(ctx.data)}`));
subscription.on('error', (ctx) => console.log(`subscription error: ${ctx.error.message}`));
subscription.subscribe();
client.connect();

let online = true;
console.log('press Enter to go offline and back online; Ctrl-C to quit');
createInterface({ input: process.stdin }).on('line', () => {
  online = !online;
  if (online) client.connect();
  else client.disconnect();
  console.log(online ? 'reconnecting...' : 'offline: publish something now, then press Enter');
});
