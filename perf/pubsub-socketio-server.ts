/**
 * The socket.io peer of the pub/sub benchmarks: a node:http server with an HTTP publish
 * route and a socket.io 4 server on the same port. Every client joins the room "bench" on
 * connection, and each publication goes out with `io.to("bench").emit("pub", data)`.
 *
 * Connection state recovery is on, with sessions and packets kept for 300 s (the history
 * TTL Rotor runs with in these benchmarks). So socket.io stores every broadcast packet as
 * Rotor keeps history, and a client that reconnects with its session id and last offset
 * gets the missed packets. Engine.IO pings every 25 s, as Rotor does.
 *
 * Routes: socket.io at /socket.io/ (WebSocket transport only), and POST /publish with the
 * publication's JSON data as the body (returns 204, or 400 for a body that is not JSON).
 *
 * Usage (the perf scripts start it as compiled JavaScript): node pubsub-socketio-server.js --port N
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';

const ROOM = 'bench';
const RECOVERY_WINDOW_MS = 300_000;

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) throw new Error(`invalid --port ${JSON.stringify(values.port)}: expected a TCP port number`);

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let data: unknown;
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end('invalid JSON body\n');
      return;
    }
    io.to(ROOM).emit('pub', data);
    res.writeHead(204).end();
  });
});

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  pingInterval: 25_000,
  connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: true },
});

io.on('connection', (socket) => {
  void socket.join(ROOM);
});

server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => console.log(`socket.io server listening on 127.0.0.1:${port}`));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(0));
}
