/**
 * The empty-handler reference for perf/api.ts: a plain node:http server that reads the
 * request body and returns a fixed 200 JSON reply shaped like a Rotor publish result.
 * It listens on a free loopback port and prints `{"url":"http://127.0.0.1:PORT"}` on
 * stdout once it accepts connections. SIGTERM stops it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const REPLY = '{"result":{"offset":1,"epoch":"reference"}}';
const REPLY_LENGTH = Buffer.byteLength(REPLY);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    // Concatenated like a real handler would before parsing, so the reference pays that too.
    Buffer.concat(chunks);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': REPLY_LENGTH });
    res.end(REPLY);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
