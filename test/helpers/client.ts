/**
 * Client-side helpers for tests over real sockets: connection and subscription tokens,
 * the official `centrifuge` client wired to a test server, and a raw protocol client
 * that sends frames as given and records every frame and the close code.
 */
import type { Socket } from 'node:net';
import { Centrifuge, type ConnectedContext, type EventMap, type Options, type TypedEventEmitter } from 'centrifuge';
import { SignJWT, type JWTPayload } from 'jose';
import WebSocket from 'ws';
import { waitFor } from './server.js';

/** HMAC secret for `token_hmac_secret_key` in tests. */
export const SECRET = 'test-token-secret';

/** How long helpers wait for an event before failing the test. */
export const EVENT_TIMEOUT_MS = 5000;

/** Returns the WebSocket endpoint of a server, given its base URL (http://host:port). */
export function websocketUrl(baseUrl: string): string {
  return `${baseUrl.replace(/^http/, 'ws')}/connection/websocket`;
}

/** Returns the current time in unix seconds, as JWT `exp` counts it. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Signs claims (`sub`, `exp`, `channels`, `channel`, `info`, ...) as an HS256 JWT. */
export function makeToken(claims: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

/** Resolves with the first `event` emitted after the call that passes `filter`, or rejects after `timeout` ms. */
export function nextEvent<Events extends EventMap, E extends keyof Events & string>(
  emitter: TypedEventEmitter<Events>,
  event: E,
  filter: (ctx: Parameters<Events[E]>[0]) => boolean = () => true,
  timeout = EVENT_TIMEOUT_MS,
): Promise<Parameters<Events[E]>[0]> {
  type Context = Parameters<Events[E]>[0];
  return new Promise((resolve, reject) => {
    const listener = ((ctx: Context): void => {
      if (!filter(ctx)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(ctx);
    }) as Events[E];
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeout} ms waiting for the "${event}" event`));
    }, timeout);
    emitter.on(event, listener);
  });
}

/**
 * A centrifuge client with test controls. Its sockets go to `target`, which a test may
 * point at another server (a restarted one) between attempts. `pause` delays the next
 * connection attempts until `resume`, so a test can act while the client is away.
 */
export class TestClient {
  readonly centrifuge: Centrifuge;
  /** Base URL of the server the next connection attempt goes to. */
  target: string;
  /** Errors the client emitted (`error` events), in order. */
  readonly errors: Array<{ type: string; error: { code: number; message: string } }> = [];
  /** Client states in order of the transitions, with their codes. */
  readonly transitions: Array<{ state: 'connecting' | 'connected' | 'disconnected'; code: number }> = [];
  private readonly sockets: WebSocket[] = [];
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};

  constructor(baseUrl: string, options: Partial<Options> = {}) {
    this.target = baseUrl;
    // The client builds every socket with this class, so the test can reach and redirect them.
    const client = this;
    class RoutedWebSocket extends WebSocket {
      constructor(_url: string, protocols?: string | string[]) {
        super(websocketUrl(client.target), protocols);
        client.sockets.push(this);
      }
    }
    this.centrifuge = new Centrifuge(websocketUrl(baseUrl), {
      websocket: RoutedWebSocket,
      minReconnectDelay: 50,
      maxReconnectDelay: 200,
      // The client awaits this before every connection attempt.
      getData: () => this.gate.then(() => null),
      ...options,
    });
    this.centrifuge.on('error', (ctx) => this.errors.push({ type: ctx.type, error: { code: ctx.error.code, message: ctx.error.message } }));
    this.centrifuge.on('connecting', (ctx) => this.transitions.push({ state: 'connecting', code: ctx.code }));
    this.centrifuge.on('connected', () => this.transitions.push({ state: 'connected', code: 0 }));
    this.centrifuge.on('disconnected', (ctx) => this.transitions.push({ state: 'disconnected', code: ctx.code }));
  }

  /** Connects and resolves with the connected event, which carries the client id. */
  connect(): Promise<ConnectedContext> {
    const connected = nextEvent(this.centrifuge, 'connected');
    this.centrifuge.connect();
    return connected;
  }

  /** Delays connection attempts until `resume`. */
  pause(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  resume(): void {
    this.openGate();
    this.gate = Promise.resolve();
  }

  /** Destroys the current socket without a close frame, as a network failure does. */
  dropSocket(): void {
    const socket = this.sockets[this.sockets.length - 1];
    if (socket === undefined) throw new Error('the client has no socket to drop');
    socket.terminate();
  }

  close(): void {
    this.resume();
    this.centrifuge.disconnect();
    for (const socket of this.sockets) socket.terminate();
  }
}

/** Creates a test client for a server. Call `connect()` next and `close()` when done. */
export function createClient(baseUrl: string, options: Partial<Options> = {}): TestClient {
  return new TestClient(baseUrl, options);
}

/** One decoded line of a server frame: a reply (with `id`), a push, or a ping (`{}`). */
export type ServerMessage = Record<string, any>;

export interface RawClientOptions {
  /** Send a pong (`{}`) for every server ping, true by default. */
  readonly autoPong?: boolean;
  /** WebSocket subprotocol, `centrifuge-json` by default. */
  readonly protocol?: string;
}

/**
 * A protocol-level client on a plain `ws` socket. It sends frames exactly as given and
 * records every received frame, its decoded lines and the close code.
 */
export class RawClient {
  /** Received text frames, unchanged. */
  readonly frames: string[] = [];
  /** Every line of every received frame, decoded, in arrival order. */
  readonly messages: ServerMessage[] = [];
  /** Received lines that are not valid JSON, which the protocol never allows. */
  readonly invalidLines: string[] = [];
  /** Server pings received. */
  pings = 0;
  /** The close code once the socket closed. */
  closeCode: number | undefined;
  private readonly closing: Promise<{ code: number; reason: string }>;
  private nextId = 1;

  private constructor(
    readonly ws: WebSocket,
    private readonly autoPong: boolean,
  ) {
    ws.on('message', (data: Buffer) => this.receive(data.toString('utf8')));
    this.closing = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
      });
    });
    // Socket errors (for example ECONNRESET) end in a close event too, and tests assert its code.
    ws.on('error', () => {});
  }

  /** Opens a raw socket to a server, given its base URL, and resolves once it is open. */
  static async open(baseUrl: string, options: RawClientOptions = {}): Promise<RawClient> {
    const ws = new WebSocket(websocketUrl(baseUrl), options.protocol ?? 'centrifuge-json');
    const client = new RawClient(ws, options.autoPong ?? true);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Resolves with the close code and reason once the socket closed, or rejects after `timeout` ms. */
  closed(timeout = EVENT_TIMEOUT_MS): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for the socket to close`)), timeout);
    });
    return Promise.race([this.closing, expired]).finally(() => clearTimeout(timer));
  }

  /** Sends one text frame exactly as given. */
  send(frame: string | Buffer): void {
    this.ws.send(frame, { binary: false });
  }

  /** Returns a new command id. */
  id(): number {
    return this.nextId++;
  }

  /** Sends one command with a new id and resolves with its reply. */
  async call(method: string, params: Record<string, unknown> = {}): Promise<ServerMessage> {
    const id = this.id();
    this.send(JSON.stringify({ [method]: params, id }));
    return this.reply(id);
  }

  /** Sends connect (anonymous unless a token is given) and resolves with the reply. */
  connect(params: Record<string, unknown> = {}): Promise<ServerMessage> {
    return this.call('connect', params);
  }

  /** Resolves with the reply of command `id` once it arrived. */
  reply(id: number, timeout = EVENT_TIMEOUT_MS): Promise<ServerMessage> {
    return waitFor(() => this.messages.find((message) => message.id === id), timeout, `reply ${id}`);
  }

  /** Publication pushes received for a channel, in arrival order. */
  publications(channel: string): Array<{ offset?: number; data: any }> {
    return this.messages.filter((message) => message.push?.channel === channel && message.push.pub !== undefined).map((message) => message.push.pub);
  }

  /** The raw TCP socket under the WebSocket, to pause reading or destroy it. */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  /** Closes the socket without a close frame, as a network failure does. */
  terminate(): void {
    this.ws.terminate();
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  private receive(frame: string): void {
    this.frames.push(frame);
    for (const line of frame.split('\n')) {
      if (line === '') continue;
      let message: ServerMessage;
      try {
        message = JSON.parse(line) as ServerMessage;
      } catch {
        this.invalidLines.push(line);
        continue;
      }
      this.messages.push(message);
      if (Object.keys(message).length === 0) {
        this.pings++;
        if (this.autoPong) this.send('{}');
      }
    }
  }
}
