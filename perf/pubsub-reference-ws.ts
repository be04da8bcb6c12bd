/**
 * The reference broadcast server of the pub/sub benchmarks: a node:http server with an
 * HTTP publish route and a `ws` WebSocketServer, written the ordinary way. Each
 * publication is wrapped in the same push envelope Rotor sends and handed to
 * `socket.send` once per client, with no coalescing of writes.
 *
 * Routes: WebSocket subscribers at /ws (every client gets every publication), and
 * POST /publish with the publication's JSON data as the body (returns 204).
 * Like most production `ws` servers it pings every client every 25 s and drops those that
 * did not respond to the previous ping, the heartbeat from the `ws` README.
 *
 * Usage (the perf scripts start it as compiled JavaScript): node pubsub-reference-ws.js --port N
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';

const PING_INTERVAL_MS = 25_000;

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) throw new Error(`invalid --port ${JSON.stringify(values.port)}: expected a TCP port number`);

const clients = new Set<WebSocket>();
const alive = new WeakSet<WebSocket>();
const sockets = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false });

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const message = `{"push":{"channel":"bench","pub":{"data":${Buffer.concat(chunks).toString('utf8')}}}}`;
    for (const client of clients) client.send(message);
    res.writeHead(204).end();
  });
});

server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/ws') {
    socket.destroy();
    return;
  }
  sockets.handleUpgrade(req, socket, head, (client) => {
    clients.add(client);
    alive.add(client);
    client.on('pong', () => alive.add(client));
    client.on('close', () => clients.delete(client));
    client.on('error', () => client.terminate());
  });
});

const heartbeat = setInterval(() => {
  for (const client of clients) {
    if (!alive.has(client)) {
      client.terminate();
      continue;
    }
    alive.delete(client);
    client.ping();
  }
}, PING_INTERVAL_MS);

server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => console.log(`reference ws server listening on 127.0.0.1:${port}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    clearInterval(heartbeat);
    process.exit(0);
  });
}
