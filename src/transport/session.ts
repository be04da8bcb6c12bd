import { randomUUID } from 'node:crypto';
import { TokenError, type ConnectionClaims, type TokenVerifier } from '../auth/tokens.js';
import type { Config } from '../config/options.js';
import type { Logger } from '../log.js';
import type { RotorNode } from '../node.js';
import { DisconnectError, Disconnects, Errors, toReplyError, type Disconnect } from '../protocol/codes.js';
import { PING, decodeCommands, encodeErrorReply, encodePush, encodeReply, type ClientCommand } from '../protocol/client.js';
import type { Hub } from './hub.js';
import { handleCommand } from './commands.js';
import type { Subscription } from './subscription.js';
import type { TimerWheel, WheelTimer } from './timer-wheel.js';
import type { WriteScheduler } from './write-scheduler.js';

/** The byte pipe under a session: a WebSocket, or later a SockJS or HTTP-streaming connection. */
export interface Transport {
  readonly name: string;
  /** Sends one transport message (a WebSocket text frame). */
  send(message: Buffer | string): void;
  close(code: number, reason: string): void;
  /** Bytes handed to the transport and not yet written to the kernel. */
  bufferedAmount(): number;
}

/** Everything a session uses that is shared by all sessions of the node. */
export interface SessionContext {
  readonly node: RotorNode;
  readonly config: Config;
  readonly hub: Hub<Session>;
  readonly wheel: TimerWheel;
  readonly tokens: TokenVerifier;
  readonly writes: WriteScheduler;
  readonly logger: Logger;
}

type State = 'connecting' | 'connected' | 'rejected' | 'closed';

const NEWLINE = Buffer.from('\n');
/** The client's response to a ping: an empty command. */
const PONG = '{}';

/**
 * One client connection: the protocol state machine of the v2 client protocol, its
 * subscriptions and its outbound queue. Commands run one at a time in arrival order.
 * Outbound messages queue during an event-loop turn and leave as one transport message
 * of newline-separated replies and pushes.
 */
export class Session {
  readonly id = randomUUID();
  user = '';
  /** `conn_info` from the connection token, as JSON text. */
  connInfo: string | undefined;
  /** Connection expiry (unix seconds); 0 never. */
  expireAt = 0;
  state: State = 'connecting';
  readonly subscriptions = new Map<string, Subscription>();
  /** Created on first use: a pino child logger per idle connection would cost about 1 KB. */
  private childLogger: Logger | undefined;

  private readonly queue: Array<Buffer | string> = [];
  private queuedBytes = 0;
  private scheduled = false;
  /** Commands waiting while an asynchronous command runs; undefined when none runs. */
  private inbox: ClientCommand[] | undefined;
  private staleTimer: WheelTimer | undefined;
  private pingTimer: WheelTimer | undefined;
  private pongTimer: WheelTimer | undefined;
  private expiryTimer: WheelTimer | undefined;
  private presenceTimer: WheelTimer | undefined;

  constructor(
    readonly context: SessionContext,
    readonly transport: Transport,
  ) {
    this.staleTimer = context.wheel.schedule(context.config.client_stale_close_delay, Session.closeIfStale, this);
    if (context.logger.isLevelEnabled('debug')) this.logger.debug('client connection opened');
  }

  /** The session's logger, bound to its client id and transport. */
  get logger(): Logger {
    this.childLogger ??= this.context.logger.child({ client: this.id, transport: this.transport.name });
    return this.childLogger;
  }

  /** Handles one incoming transport message of newline-delimited JSON commands. */
  receive(text: string): void {
    if (this.state === 'closed' || this.state === 'rejected') return;
    // The pong is most of what an idle connection sends; it needs no JSON parser.
    if (text === PONG && this.state === 'connected' && this.inbox === undefined) {
      this.pong();
      return;
    }
    let commands: ClientCommand[];
    try {
      commands = decodeCommands(text);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.inbox !== undefined) this.inbox.push(...commands);
    else this.run(commands);
  }

  /**
   * Runs commands in order. Synchronous ones (pongs, unsubscribes) run at once without a
   * promise. After an asynchronous one, the rest wait in the inbox until it settles.
   */
  private run(commands: ClientCommand[]): void {
    for (let i = 0; i < commands.length; i++) {
      if (this.state === 'closed' || this.state === 'rejected') return;
      const command = commands[i]!;
      let pending: Promise<void> | void;
      try {
        pending = handleCommand(this, command);
      } catch (err) {
        this.fail(err, command);
        continue;
      }
      if (pending === undefined) continue;
      this.inbox = commands.slice(i + 1);
      pending
        .catch((err: unknown) => this.fail(err, command))
        .then(() => {
          const rest = this.inbox ?? [];
          this.inbox = undefined;
          this.run(rest);
        });
      return;
    }
  }

  /** Cleans up after the transport closed, by either side. */
  closed(): void {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    const { wheel, hub } = this.context;
    for (const timer of [this.staleTimer, this.pingTimer, this.pongTimer, this.expiryTimer, this.presenceTimer]) wheel.cancel(timer);
    for (const subscription of [...this.subscriptions.values()]) this.dropSubscription(subscription, true);
    if (wasConnected) hub.removeClient(this);
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.inbox = undefined;
    if (this.context.logger.isLevelEnabled('debug')) this.logger.debug('client connection closed');
  }

  /** Closes the connection with a disconnect code; the client reconnects or not by the code. */
  disconnect(reason: Disconnect): void {
    if (this.state === 'closed') return;
    this.flush();
    if (this.context.logger.isLevelEnabled('debug')) this.logger.debug({ code: reason.code, reason: reason.reason }, 'disconnecting client');
    this.transport.close(reason.code, reason.reason);
    this.closed();
  }

  /** Queues one message for the client; the queue leaves as one transport message at the end of the turn. */
  enqueue(message: Buffer | string): void {
    if (this.state === 'closed') return;
    this.queue.push(message);
    // String length counts UTF-16 units, close to bytes for the ASCII-heavy JSON here.
    this.queuedBytes += message.length;
    if (this.queuedBytes > this.context.config.client_queue_max_size) {
      this.slow();
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.context.writes.schedule(this);
    }
  }

  /** Writes the queued messages as one transport message. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0 || this.state === 'closed') return;
    // The array is reused: a new one per flush would be kept until the next ping and
    // promoted to the old generation on idle connections.
    const queue = this.queue;
    const message = queue.length === 1 ? queue[0]! : joinMessages(queue);
    queue.length = 0;
    this.queuedBytes = 0;
    this.transport.send(message);
    if (this.transport.bufferedAmount() > this.context.config.client_queue_max_size) this.slow();
  }

  rejectMessage(err: unknown): void {
    this.fail(err);
  }

  reply(id: number, method: string, resultJson: string): void {
    this.enqueue(encodeReply(id, method, resultJson));
  }

  /** Applies verified connection claims: user, info, and expiry with client-side refresh. */
  authenticate(claims: Pick<ConnectionClaims, 'user' | 'info' | 'expireAt'>): void {
    this.user = claims.user;
    this.connInfo = claims.info;
    this.setExpiry(claims.expireAt);
  }

  /** Sets the connection expiry and schedules the close that follows it unless a refresh arrives. */
  setExpiry(expireAt: number): void {
    const { wheel, config } = this.context;
    this.expireAt = expireAt;
    wheel.cancel(this.expiryTimer);
    this.expiryTimer = undefined;
    if (expireAt === 0) return;
    const delay = expireAt * 1000 - Date.now() + config.client_expired_close_delay;
    this.expiryTimer = wheel.schedule(delay, Session.closeIfExpired, this);
  }

  /** Moves the session to connected: registers it, starts pings and presence refresh. */
  markConnected(): void {
    const { wheel, hub, config } = this.context;
    this.state = 'connected';
    wheel.cancel(this.staleTimer);
    this.staleTimer = undefined;
    hub.addClient(this);
    // The first ping comes at a random moment in the second half of the interval, so
    // clients that connected together do not get their pings together.
    this.schedulePing(config.ping_interval / 2 + Math.random() * (config.ping_interval / 2));
  }

  /** Marks the connection unusable after a failed connect; the client closes or reconnects. */
  reject(): void {
    this.state = 'rejected';
  }

  pong(): void {
    this.context.wheel.cancel(this.pongTimer);
    this.pongTimer = undefined;
  }

  addPresence(subscription: Subscription): void {
    this.sendPresence(subscription);
    if (this.presenceTimer === undefined) this.schedulePresenceRefresh();
  }

  /** Removes a subscription everywhere; with `announce`, subscribers see the leave. */
  dropSubscription(subscription: Subscription, announce: boolean): void {
    const { hub, node, wheel } = this.context;
    if (this.subscriptions.get(subscription.channel) === subscription) this.subscriptions.delete(subscription.channel);
    const wasLive = subscription.live;
    hub.removeSubscription(subscription);
    wheel.cancel(subscription.expiryTimer);
    const info = subscription.clientInfo(this.connInfo);
    if (subscription.flags.presence) {
      node.scheduler.send({ type: 'presence_remove', channel: subscription.channel, client: this.id }).catch((err: unknown) => {
        this.logger.warn({ err, channel: subscription.channel }, 'presence remove failed');
      });
    }
    if (announce && wasLive && subscription.flags.emitJoinLeave) hub.broadcastPresenceEvent(subscription.channel, 'leave', info);
  }

  /** Sends an unsubscribe push for a subscription the server ended. */
  pushUnsubscribe(subscription: Subscription, code: number, reason: string): void {
    this.dropSubscription(subscription, true);
    this.enqueue(encodePush(subscription.channel, 'unsubscribe', JSON.stringify({ code, reason })));
  }

  private slow(): void {
    this.logger.warn({ limit: this.context.config.client_queue_max_size }, 'client queue over the limit, disconnecting slow client');
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.transport.close(Disconnects.slow.code, Disconnects.slow.reason);
    this.closed();
  }

  /** Turns an error from a command into a reply error or a disconnect. */
  private fail(err: unknown, command?: ClientCommand): void {
    if (err instanceof DisconnectError) {
      this.logger.info({ code: err.disconnect.code, detail: err.message, method: command?.method }, 'client protocol violation');
      this.disconnect(err.disconnect);
      return;
    }
    if (err instanceof TokenError) {
      this.logger.info({ detail: err.message }, 'invalid token');
      this.disconnect(Disconnects.invalidToken);
      return;
    }
    const error = toReplyError(err);
    if (error.code === Errors.internal.code) this.logger.error({ err, method: command?.method }, 'client command failed');
    else this.logger.debug({ code: error.code, method: command?.method, detail: (err as Error).message }, 'client command rejected');
    if (command === undefined || command.id === 0) {
      this.disconnect(Disconnects.internal);
      return;
    }
    this.enqueue(encodeErrorReply(command.id, error));
    if (command.method === 'connect') this.reject();
  }

  private schedulePing(delay: number): void {
    const { wheel } = this.context;
    this.pingTimer = this.pingTimer === undefined ? wheel.schedule(delay, Session.ping, this) : wheel.reschedule(this.pingTimer, delay);
  }

  private static closeIfStale(session: Session): void {
    if (session.state === 'connecting' || session.state === 'rejected') session.disconnect(Disconnects.stale);
  }

  private static closeIfExpired(session: Session): void {
    session.expiryTimer = undefined;
    if (session.expireAt !== 0 && session.expireAt * 1000 <= Date.now()) session.disconnect(Disconnects.expired);
  }

  private static ping(session: Session): void {
    if (session.state !== 'connected') return;
    const { wheel, config } = session.context;
    session.enqueue(PING);
    session.pongTimer ??= wheel.schedule(config.pong_timeout, Session.closeWithoutPong, session);
    session.schedulePing(config.ping_interval);
  }

  private static closeWithoutPong(session: Session): void {
    session.pongTimer = undefined;
    session.disconnect(Disconnects.noPong);
  }

  private static refreshPresence(session: Session): void {
    session.presenceTimer = undefined;
    if (session.state === 'closed') return;
    let any = false;
    for (const subscription of session.subscriptions.values()) {
      if (!subscription.flags.presence) continue;
      any = true;
      session.sendPresence(subscription);
    }
    if (any) session.schedulePresenceRefresh();
  }

  private sendPresence(subscription: Subscription): void {
    const { node, config } = this.context;
    const command = { type: 'presence_add', channel: subscription.channel, info: subscription.clientInfo(this.connInfo), ttl: config.presence_ttl } as const;
    node.scheduler.send(command).catch((err: unknown) => {
      this.logger.warn({ err, channel: subscription.channel }, 'presence update failed');
    });
  }

  private schedulePresenceRefresh(): void {
    this.presenceTimer = this.context.wheel.schedule(this.context.config.client_presence_update_interval, Session.refreshPresence, this);
  }

}

function joinMessages(queue: Array<Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < queue.length; i++) {
    if (i > 0) parts.push(NEWLINE);
    const message = queue[i]!;
    parts.push(typeof message === 'string' ? Buffer.from(message) : message);
  }
  return Buffer.concat(parts);
}

