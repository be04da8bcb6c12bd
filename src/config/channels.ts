import { Errors, RotorError } from '../protocol/codes.js';
import type { ChannelOptions, Config } from './options.js';

/** The parts of a channel name that decide its options and permissions. */
export interface ChannelName {
  readonly channel: string;
  /** Namespace name, or '' for channels without one. */
  readonly namespace: string;
  readonly options: ChannelOptions;
  /** True for names starting with the private prefix (`$` by default). */
  readonly private: boolean;
  /** Users listed after the user boundary (`#`), or undefined when the channel is not user-limited. */
  readonly users: readonly string[] | undefined;
}

/** Splits channel names into namespace and options, with a cache since the same names repeat on every publish. */
export class ChannelResolver {
  private readonly namespaces: ReadonlyMap<string, ChannelOptions>;
  private readonly regexes = new Map<ChannelOptions, RegExp>();
  private readonly cache = new Map<string, ChannelName>();

  constructor(private readonly config: Config) {
    this.namespaces = new Map(config.namespaces.map((ns) => [ns.name, ns]));
    for (const options of [config as ChannelOptions, ...config.namespaces]) {
      if (options.channel_regex !== '') this.regexes.set(options, new RegExp(options.channel_regex));
    }
  }

  /**
   * Resolves a channel name, or throws RotorError 107 (empty, too long, not ASCII, not
   * matching channel_regex) or 102 (unknown namespace).
   */
  resolve(channel: string): ChannelName {
    const cached = this.cache.get(channel);
    if (cached !== undefined) return cached;
    const resolved = this.parse(channel);
    // Bounded so that a client cycling through random names cannot grow it without limit.
    if (this.cache.size >= 100_000) this.cache.clear();
    this.cache.set(channel, resolved);
    return resolved;
  }

  private parse(channel: string): ChannelName {
    const config = this.config;
    if (channel === '') throw new RotorError(Errors.badRequest, { detail: 'empty channel' });
    if (Buffer.byteLength(channel) > config.channel_max_length) {
      throw new RotorError(Errors.badRequest, { detail: `channel longer than ${config.channel_max_length} bytes` });
    }
    const isPrivate = config.channel_private_prefix !== '' && channel.startsWith(config.channel_private_prefix);
    const name = isPrivate ? channel.slice(config.channel_private_prefix.length) : channel;
    const boundary = name.indexOf(config.channel_namespace_boundary);
    const namespace = boundary > 0 ? name.slice(0, boundary) : '';
    const rest = boundary > 0 ? name.slice(boundary + config.channel_namespace_boundary.length) : name;
    const options = namespace === '' ? (config as ChannelOptions) : this.namespaces.get(namespace);
    if (options === undefined) throw new RotorError(Errors.unknownChannel, { detail: `unknown namespace "${namespace}"` });
    const regex = this.regexes.get(options);
    if (regex !== undefined) {
      if (!regex.test(rest)) throw new RotorError(Errors.badRequest, { detail: 'channel does not match channel_regex' });
    } else if (!/^[\x20-\x7e]+$/.test(channel)) {
      throw new RotorError(Errors.badRequest, { detail: 'channel has characters outside printable ASCII' });
    }
    const userBoundary = rest.lastIndexOf(config.channel_user_boundary);
    const users =
      userBoundary >= 0
        ? rest
            .slice(userBoundary + config.channel_user_boundary.length)
            .split(config.channel_user_separator)
            .filter((user) => user !== '')
        : undefined;
    return Object.freeze({ channel, namespace, options, private: isPrivate, users });
  }
}

/** True when the options keep history: both history_size and history_ttl are set. */
export function historyEnabled(options: ChannelOptions): boolean {
  return options.history_size > 0 && options.history_ttl > 0;
}
