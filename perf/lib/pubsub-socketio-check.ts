/**
 * Checks the socket.io server of the benchmarks with the official socket.io-client: the
 * client joins the room, loses its transport, misses publications, and must get them back
 * through connection state recovery. The load client speaks the socket.io protocol by hand
 * to stay cheap, so this check shows that the server behaves for a real client as the
 * measurement assumes.
 */
import { io } from 'socket.io-client';
import type { Target } from './pubsub-protocols.js';
import { sleep } from './pubsub-system.js';

async function publish(target: Target, seq: number): Promise<void> {
  const response = await fetch(`http://${target.host}:${target.port}/publish`, { method: 'POST', body: JSON.stringify({ ts: 0, seq }) });
  if (response.status !== 204) throw new Error(`socket.io-client check: the server returned HTTP ${response.status} for a publish, expected 204`);
}

/** Resolves when `condition` holds, polling every 20 ms; fails after `timeoutMs`. */
async function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`socket.io-client check: timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** Throws when the official client does not recover the publications it missed. */
export async function checkSocketIoRecovery(target: Target): Promise<void> {
  const socket = io(`http://${target.host}:${target.port}`, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 100 });
  const received: number[] = [];
  socket.on('pub', (data: { seq: number }) => received.push(data.seq));
  try {
    await until('the client connected', () => socket.connected);
    await publish(target, 1);
    await until('the first publication arrived', () => received.length === 1);
    // Closing the Engine.IO transport looks like a network failure to both sides, so the
    // client reconnects by itself and the server keeps the session for recovery.
    socket.io.engine.close();
    await until('the client noticed the lost transport', () => !socket.connected);
    await publish(target, 2);
    await publish(target, 3);
    await until('the client reconnected', () => socket.connected);
    await until('the missed publications arrived', () => received.length === 3);
    if (!socket.recovered) throw new Error('socket.io-client check: the reconnected client reports recovered = false');
    if (received.join(',') !== '1,2,3') throw new Error(`socket.io-client check: expected publications 1,2,3, got ${received.join(',')}`);
  } finally {
    socket.disconnect();
  }
}
