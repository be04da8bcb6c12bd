/**
 * Every configuration option Rotor reads, with its kind, default and meaning. Names are
 * Centrifugo's flat (v4/v5) option names, so an existing Centrifugo config runs unchanged
 * where the feature exists. Durations are resolved to milliseconds, sizes to bytes.
 */

export type OptionKind = 'bool' | 'int' | 'duration' | 'string' | 'strings' | 'enum';

export interface OptionSpec {
  readonly kind: OptionKind;
  readonly default: boolean | number | string | readonly string[];
  /** Smallest accepted value for `int` and `duration` (milliseconds) options. */
  readonly min?: number;
  /** Largest accepted value for `int` options. */
  readonly max?: number;
  /** Accepted values of an `enum` option. */
  readonly values?: readonly string[];
  readonly help: string;
}

/** Options a namespace may set; the same names at the top level apply to channels without a namespace. */
export const CHANNEL_OPTIONS = {
  presence: { kind: 'bool', default: false, help: 'keep presence (who is subscribed) for the channels' },
  join_leave: { kind: 'bool', default: false, help: 'send join and leave pushes to subscribers who request them' },
  force_push_join_leave: { kind: 'bool', default: false, help: 'send join and leave pushes to every subscriber' },
  history_size: { kind: 'int', default: 0, min: 0, help: 'publications kept per channel; 0 turns history off' },
  history_ttl: { kind: 'duration', default: 0, min: 0, help: 'how long publications are kept after the last publish; 0 turns history off' },
  force_recovery: { kind: 'bool', default: false, help: 'recover missed publications on every resubscribe' },
  allow_recovery: { kind: 'bool', default: false, help: 'let clients request recovery' },
  force_positioning: { kind: 'bool', default: false, help: 'give every subscriber the stream position (offset and epoch) on subscribe' },
  allow_positioning: { kind: 'bool', default: false, help: 'let clients request the stream position on subscribe' },
  allow_subscribe_for_client: { kind: 'bool', default: false, help: 'let authenticated clients subscribe' },
  allow_subscribe_for_anonymous: { kind: 'bool', default: false, help: 'let anonymous clients subscribe (with allow_subscribe_for_client)' },
  allow_publish_for_client: { kind: 'bool', default: false, help: 'let clients publish' },
  allow_publish_for_subscriber: { kind: 'bool', default: false, help: 'let subscribers of a channel publish into it' },
  allow_publish_for_anonymous: { kind: 'bool', default: false, help: 'let anonymous clients publish (with one of the two above)' },
  allow_history_for_client: { kind: 'bool', default: false, help: 'let clients read history' },
  allow_history_for_subscriber: { kind: 'bool', default: false, help: 'let subscribers read history' },
  allow_history_for_anonymous: { kind: 'bool', default: false, help: 'let anonymous clients read history (with one of the two above)' },
  allow_presence_for_client: { kind: 'bool', default: false, help: 'let clients read presence' },
  allow_presence_for_subscriber: { kind: 'bool', default: false, help: 'let subscribers read presence' },
  allow_presence_for_anonymous: { kind: 'bool', default: false, help: 'let anonymous clients read presence (with one of the two above)' },
  allow_user_limited_channels: { kind: 'bool', default: false, help: 'allow channels limited to users listed after #' },
  channel_regex: { kind: 'string', default: '', help: 'regular expression the channel name after the namespace must match' },
} as const satisfies Record<string, OptionSpec>;

/** Options that exist only at the top level. */
export const GLOBAL_OPTIONS = {
  address: { kind: 'string', default: '127.0.0.1', help: 'interface the HTTP server binds to' },
  port: { kind: 'int', default: 8000, min: 0, max: 65535, help: 'HTTP port; 0 picks a free port' },
  name: { kind: 'string', default: '', help: 'node name shown by the info API; empty means host name and port' },
  log_level: { kind: 'enum', default: 'info', values: ['none', 'trace', 'debug', 'info', 'warn', 'error'], help: 'least severe level written to the log' },
  api_key: { kind: 'string', default: '', help: 'key the server API requires; empty rejects every call unless api_insecure' },
  api_insecure: { kind: 'bool', default: false, help: 'serve the server API without a key' },
  api_error_mode: { kind: 'enum', default: '', values: ['', 'transport'], help: '"transport" sends API errors with HTTP status codes' },
  api_max_body_size: { kind: 'int', default: 10 * 1024 * 1024, min: 1, help: 'largest server API request body in bytes' },
  data_dir: { kind: 'string', default: './data', help: 'folder of the SQLite history databases' },
  history_storage: { kind: 'enum', default: 'sqlite', values: ['sqlite', 'memory'], help: 'where history is kept' },
  history_meta_ttl: { kind: 'duration', default: 720 * 3_600_000, min: 0, help: 'how long a stream (offset and epoch) lives after its last publish; 0 keeps it forever' },
  actor_workers: { kind: 'int', default: 0, min: 0, max: 256, help: 'threads in the channel actor pool; 0 picks from the number of CPUs' },
  actor_shards: { kind: 'int', default: 16, min: 1, max: 4096, help: 'channel shards; fixed once a data directory is created' },
  channel_max_length: { kind: 'int', default: 255, min: 1, help: 'maximum channel name length in bytes' },
  channel_namespace_boundary: { kind: 'string', default: ':', help: 'separator between namespace and channel name' },
  channel_user_boundary: { kind: 'string', default: '#', help: 'marks a user-limited channel' },
  channel_user_separator: { kind: 'string', default: ',', help: 'separates the users of a user-limited channel' },
  channel_private_prefix: { kind: 'string', default: '$', help: 'prefix of channels that need a subscription token' },
  token_hmac_secret_key: { kind: 'string', default: '', help: 'HMAC secret for connection and subscription JWTs (HS256/384/512)' },
  token_audience: { kind: 'string', default: '', help: 'required "aud" claim of tokens; empty skips the check' },
  token_issuer: { kind: 'string', default: '', help: 'required "iss" claim of tokens; empty skips the check' },
  allow_anonymous_connect_without_token: { kind: 'bool', default: false, help: 'accept connections without a token as anonymous' },
  client_insecure: { kind: 'bool', default: false, help: 'accept every client without a token and allow every action (development only)' },
  allowed_origins: { kind: 'strings', default: [], help: 'Origin values accepted on WebSocket upgrades; "*" accepts any; empty accepts only requests without Origin or from the same host' },
  client_channel_limit: { kind: 'int', default: 128, min: 0, help: 'channels one connection may subscribe to; 0 means no limit' },
  client_user_connection_limit: { kind: 'int', default: 0, min: 0, help: 'connections per user on this node; 0 means no limit' },
  client_queue_max_size: { kind: 'int', default: 1024 * 1024, min: 1, help: 'bytes queued for one client before it is disconnected as slow' },
  client_history_max_publication_limit: { kind: 'int', default: 300, min: 0, help: 'maximum publications one client history call returns; 0 means no cap' },
  client_recovery_max_publication_limit: { kind: 'int', default: 300, min: 0, help: 'maximum publications one recovery replays' },
  client_stale_close_delay: { kind: 'duration', default: 25_000, min: 1, help: 'time a connection has to send connect' },
  client_expired_close_delay: { kind: 'duration', default: 25_000, min: 0, help: 'grace after token expiry before the connection is closed' },
  client_expired_sub_close_delay: { kind: 'duration', default: 25_000, min: 0, help: 'grace after subscription token expiry before unsubscribing' },
  client_presence_update_interval: { kind: 'duration', default: 27_000, min: 1, help: 'how often a connection refreshes its presence entries' },
  presence_ttl: { kind: 'duration', default: 60_000, min: 1, help: 'how long a presence entry lives without refresh' },
  ping_interval: { kind: 'duration', default: 25_000, min: 1000, help: 'server ping period' },
  pong_timeout: { kind: 'duration', default: 8000, min: 1, help: 'time a client has to respond to a ping' },
  websocket_message_size_limit: { kind: 'int', default: 65536, min: 1, help: 'largest incoming WebSocket message in bytes; larger ones close the connection with 1009' },
  websocket_compression: { kind: 'bool', default: false, help: 'offer permessage-deflate (costs about 200 KB per connection)' },
  user_subscribe_to_personal: { kind: 'bool', default: false, help: 'subscribe each user to the personal channel #<user>' },
  user_personal_channel_namespace: { kind: 'string', default: '', help: 'namespace of personal channels' },
  public_dir: { kind: 'string', default: '', help: 'folder whose static/ subfolder is served under /static/; empty means the public folder of the installation' },
  shutdown_timeout: { kind: 'duration', default: 30_000, min: 0, help: 'time graceful shutdown waits for work in flight' },
} as const satisfies Record<string, OptionSpec>;

/** Other names accepted for an option, as older or newer Centrifugo versions spell them. */
export const OPTION_ALIASES: Readonly<Record<string, string>> = {
  global_history_meta_ttl: 'history_meta_ttl',
  message_size_limit: 'websocket_message_size_limit',
  client_anonymous: 'allow_anonymous_connect_without_token',
};

/**
 * Centrifugo options Rotor accepts and ignores without a warning, because they have no
 * effect here (for example `health`: the health endpoint is always on).
 */
export const IGNORED_OPTIONS: ReadonlySet<string> = new Set(['health']);

type ValueOf<S extends OptionSpec> = S['kind'] extends 'bool'
  ? boolean
  : S['kind'] extends 'int' | 'duration'
    ? number
    : S['kind'] extends 'strings'
      ? readonly string[]
      : string;

export type ChannelOptions = { readonly [K in keyof typeof CHANNEL_OPTIONS]: ValueOf<(typeof CHANNEL_OPTIONS)[K]> };

export interface Namespace extends ChannelOptions {
  readonly name: string;
}

export type Config = { readonly [K in keyof typeof GLOBAL_OPTIONS]: ValueOf<(typeof GLOBAL_OPTIONS)[K]> } & ChannelOptions & {
  readonly namespaces: readonly Namespace[];
};

export const NAMESPACE_NAME = /^[-a-zA-Z0-9_.]{2,}$/;
