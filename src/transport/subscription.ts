import type { ChannelName } from '../config/channels.js';
import type { ClientInfo, Publication } from '../storage/history-store.js';
import type { WheelTimer } from './timer-wheel.js';

/** Options of a subscription beyond receiving publications, decided at subscribe time. */
export interface SubscriptionFlags {
  /** The client receives join and leave pushes of the channel. */
  readonly pushJoinLeave: boolean;
  /** Joining and leaving announce this client to the channel. */
  readonly emitJoinLeave: boolean;
  readonly presence: boolean;
  readonly recoverable: boolean;
  readonly positioned: boolean;
  /** Created by the server (token `channels`, personal channel, server API), not by a client subscribe. */
  readonly serverSide: boolean;
}

/** The delivery interface the hub needs from a connection. */
export interface Subscriber {
  readonly id: string;
  readonly user: string;
  /** Queues one encoded message for the client. */
  enqueue(message: Buffer | string): void;
  /** Closes the connection because a message cannot be encoded for it. */
  rejectMessage(err: unknown): void;
}

/**
 * One connection's subscription to one channel. Until `goLive`, publications are kept in
 * a buffer, so that none falls between a history read and the live stream.
 */
export class Subscription {
  live = false;
  removed = false;
  /** Publications that arrived before the subscribe reply was sent. */
  buffer: Publication[] | undefined = [];
  /** Subscription expiry (unix seconds) from its token; 0 never. */
  expireAt = 0;
  expiryTimer: WheelTimer | undefined;

  constructor(
    readonly subscriber: Subscriber,
    readonly name: ChannelName,
    readonly flags: SubscriptionFlags,
    /** `chan_info` from the subscription token, as JSON text. */
    readonly chanInfo: string | undefined,
  ) {}

  get channel(): string {
    return this.name.channel;
  }

  /**
   * Returns the buffered publications the client has not seen (offsets above `top`, the
   * position given in the subscribe reply) and switches to live delivery.
   */
  goLive(top: number): Publication[] {
    const buffered = this.buffer ?? [];
    this.buffer = undefined;
    this.live = true;
    if (top === 0) return buffered;
    return buffered.filter((publication) => publication.offset === 0 || publication.offset > top);
  }

  clientInfo(connInfo: string | undefined): ClientInfo {
    const info: { user: string; client: string; conn_info?: string; chan_info?: string } = {
      user: this.subscriber.user,
      client: this.subscriber.id,
    };
    if (connInfo !== undefined) info.conn_info = connInfo;
    if (this.chanInfo !== undefined) info.chan_info = this.chanInfo;
    return info;
  }
}
