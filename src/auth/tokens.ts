/**
 * Connection and subscription JWTs, verified with jose (HS256, HS384, HS512 and
 * `token_hmac_secret_key`). Claims follow Centrifugo v4/v5.
 */
import { errors, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config/options.js';
import { dataFromBytes } from '../protocol/json.js';

/** Why a token was not accepted: the client reacts differently to each. */
export class TokenError extends Error {
  constructor(
    readonly kind: 'invalid' | 'expired',
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
    this.name = 'TokenError';
  }
}

export interface ConnectionClaims {
  /** User id; '' for an anonymous token. */
  readonly user: string;
  /** When the connection expires (unix seconds), from `expire_at` or else `exp`; 0 never. */
  readonly expireAt: number;
  /** `info` or `b64info` as JSON text. */
  readonly info?: string;
  /** Channels to subscribe the connection to on the server side. */
  readonly channels: readonly string[];
}

export interface SubscriptionClaims {
  readonly channel: string;
  readonly user: string;
  /** The connection id the token is bound to, when present. */
  readonly client?: string;
  /** When the subscription expires (unix seconds), from `expire_at` or else `exp`; 0 never. */
  readonly expireAt: number;
  readonly info?: string;
  /** Custom data for the subscribe result, as JSON text. */
  readonly data?: string;
}

const ALGORITHMS = ['HS256', 'HS384', 'HS512'];

function rawJson(payload: JWTPayload, field: string): string | undefined {
  const value = payload[field];
  if (value !== undefined && value !== null) return JSON.stringify(value);
  const b64 = payload[`b64${field}`];
  if (typeof b64 !== 'string' || b64 === '') return undefined;
  const decoded = dataFromBytes(Buffer.from(b64, 'base64'));
  if (typeof decoded !== 'string') throw new TokenError('invalid', `b64${field} does not hold JSON`);
  return decoded;
}

function expiry(payload: JWTPayload): number {
  const expireAt = payload.expire_at;
  if (expireAt !== undefined && expireAt !== null) {
    if (typeof expireAt !== 'number' || !Number.isFinite(expireAt)) throw new TokenError('invalid', 'expire_at must be a number');
    return expireAt;
  }
  return typeof payload.exp === 'number' ? payload.exp : 0;
}

function stringClaim(payload: JWTPayload, field: string): string | undefined {
  const value = payload[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new TokenError('invalid', `${field} must be a string`);
  return value;
}

export class TokenVerifier {
  private readonly key: Uint8Array | undefined;

  constructor(private readonly config: Config) {
    this.key = config.token_hmac_secret_key === '' ? undefined : new TextEncoder().encode(config.token_hmac_secret_key);
  }

  async verifyConnection(token: string): Promise<ConnectionClaims> {
    const payload = await this.verify(token);
    if (payload.channel !== undefined) throw new TokenError('invalid', 'a connection token must not have a channel claim');
    const channels = payload.channels ?? [];
    if (!Array.isArray(channels) || !channels.every((channel) => typeof channel === 'string')) {
      throw new TokenError('invalid', 'channels must be a list of strings');
    }
    const info = rawJson(payload, 'info');
    return { user: stringClaim(payload, 'sub') ?? '', expireAt: expiry(payload), channels, ...(info === undefined ? {} : { info }) };
  }

  async verifySubscription(token: string): Promise<SubscriptionClaims> {
    const payload = await this.verify(token);
    const channel = stringClaim(payload, 'channel');
    if (channel === undefined || channel === '') throw new TokenError('invalid', 'a subscription token needs a channel claim');
    const client = stringClaim(payload, 'client');
    const info = rawJson(payload, 'info');
    const data = rawJson(payload, 'data');
    return {
      channel,
      user: stringClaim(payload, 'sub') ?? '',
      expireAt: expiry(payload),
      ...(client === undefined ? {} : { client }),
      ...(info === undefined ? {} : { info }),
      ...(data === undefined ? {} : { data }),
    };
  }

  private async verify(token: string): Promise<JWTPayload> {
    if (this.key === undefined) throw new TokenError('invalid', 'token_hmac_secret_key is not set');
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ALGORITHMS,
        ...(this.config.token_audience === '' ? {} : { audience: this.config.token_audience }),
        ...(this.config.token_issuer === '' ? {} : { issuer: this.config.token_issuer }),
      });
      return payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new TokenError('expired', 'token expired', { cause: err });
      throw new TokenError('invalid', (err as Error).message, { cause: err });
    }
  }
}
