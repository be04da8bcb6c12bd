/**
 * The WebSocket endpoint `/connection/websocket` (JSON protocol, subprotocol
 * `centrifuge-json`), on the node's HTTP server through `ws` in noServer mode.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Config } from '../config/options.js';
import { DisconnectError, Disconnects, type Disconnect } from '../protocol/codes.js';
import { Session, type SessionContext, type Transport } from './session.js';

export const WEBSOCKET_PATH = '/connection/websocket';

const SESSION = Symbol('session');
const ENDPOINT = Symbol('endpoint');

type SessionSocket = WebSocket & { [SESSION]: Session; [ENDPOINT]: WebSocketEndpoint };

function onMessage(this: SessionSocket, data: Buffer, isBinary: boolean): void {
  const session = this[SESSION];
  if (isBinary) {
    session.rejectMessage(new DisconnectError(Disconnects.badRequest, 'binary frame on a JSON connection'));
    return;
  }
  if (!isUtf8(data)) {
    session.rejectMessage(new DisconnectError(Disconnects.badRequest, 'text frame is not valid UTF-8'));
    return;
  }
  session.receive(data.toString('utf8'));
}

function onClose(this: SessionSocket): void {
  WebSocketEndpoint.socketClosed(this);
}

function onError(this: SessionSocket, err: Error): void {
  // ws closes the socket itself after an error (1009 for an oversized message).
  this[SESSION].logger.info({ err }, 'websocket error');
}

class WebSocketTransport implements Transport {
  readonly name = 'websocket';

  constructor(private readonly socket: WebSocket) {}

  send(message: Buffer | string): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(message, { binary: false });
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState !== WebSocket.OPEN && this.socket.readyState !== WebSocket.CONNECTING) return;
    try {
      this.socket.close(code, reason);
    } catch {
      // ws throws on an invalid code or a reason over 123 bytes; the connection must still end.
      this.socket.terminate();
    }
  }

  bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }
}

function wildcardToRegExp(pattern: string): RegExp {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`, 'i');
}

/**
 * Checks the Origin of an upgrade against `allowed_origins`: "*" accepts any, patterns may
 * use "*" wildcards, and an empty list accepts only requests without Origin or from the
 * same host (as browsers send for pages served by this server).
 */
export function originChecker(config: Config): (req: IncomingMessage) => boolean {
  const patterns = config.allowed_origins.map(wildcardToRegExp);
  const any = config.allowed_origins.includes('*');
  return (req) => {
    const origin = req.headers.origin;
    if (origin === undefined || any) return true;
    if (patterns.length > 0) return patterns.some((pattern) => pattern.test(origin));
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  };
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  socket.end(`HTTP/1.1 ${status} ${message}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${message.length + 1}\r\n\r\n${message}\n`);
}

export class WebSocketEndpoint {
  private readonly server: WebSocketServer;
  private readonly originAllowed: (req: IncomingMessage) => boolean;
  /** Open sessions, connected or not, so that shutdown can close them all. */
  private readonly sessions = new Set<Session>();

  constructor(private readonly context: SessionContext) {
    const config = context.config;
    this.originAllowed = originChecker(config);
    this.server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: config.websocket_message_size_limit,
      perMessageDeflate: config.websocket_compression,
      // UTF-8 is checked below, so that invalid text is the protocol's 3501 disconnect.
      skipUTF8Validation: true,
      // NOTE: only the JSON protocol is served. A client offering only centrifuge-protobuf
      // gets no subprotocol back, which browsers treat as a failed handshake.
      handleProtocols: (protocols) => (protocols.has('centrifuge-json') ? 'centrifuge-json' : false),
    });
  }

  /** Takes over an HTTP upgrade request for the WebSocket path. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.originAllowed(req)) {
      this.context.logger.info({ origin: req.headers.origin }, 'websocket origin not allowed');
      rejectUpgrade(socket, 403, 'Forbidden');
      return;
    }
    this.server.handleUpgrade(req, socket, head, (ws) => this.open(ws));
  }

  /** Open connections, connected or still connecting. */
  get size(): number {
    return this.sessions.size;
  }

  /** Closes every open connection with the given disconnect (3001 shutdown on server stop). */
  closeAll(reason: Disconnect): void {
    for (const session of [...this.sessions]) session.disconnect(reason);
    this.sessions.clear();
  }

  private open(ws: WebSocket): void {
    const session = new Session(this.context, new WebSocketTransport(ws));
    this.sessions.add(session);
    // Shared listeners find their session through the socket, so an idle connection
    // carries no closures of its own.
    const socket = ws as SessionSocket;
    socket[SESSION] = session;
    socket[ENDPOINT] = this;
    socket.on('message', onMessage as (this: WebSocket, data: Buffer, isBinary: boolean) => void);
    socket.on('close', onClose as (this: WebSocket) => void);
    socket.on('error', onError as (this: WebSocket, err: Error) => void);
  }

  private forget(session: Session): void {
    this.sessions.delete(session);
  }

  /** Forgets the session of a closed socket and lets it clean up. */
  static socketClosed(socket: SessionSocket): void {
    socket[ENDPOINT].forget(socket[SESSION]);
    socket[SESSION].closed();
  }

}
