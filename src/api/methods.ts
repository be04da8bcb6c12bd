/**
 * Server API methods. Each takes the request object and resolves to the JSON text of
 * its result; failures reject with RotorError carrying the API error code.
 */
import type { RotorNode } from '../node.js';
import { Errors, RotorError, toReplyError } from '../protocol/codes.js';
import { encodeClientInfo, encodePublications } from '../protocol/json.js';
import type { HistoryQuery } from '../storage/history-store.js';
import { CONNECTION_METHODS } from './connections.js';
import { asParams, readBool, readData, readInt, readPosition, readString, readStrings, readTags, type Params } from './params.js';

export type ApiMethod = (node: RotorNode, params: Params) => Promise<string>;

function publishOne(node: RotorNode, channel: string, params: Params): Promise<string> {
  const data = readData(params);
  const tags = readTags(params);
  return node
    .publish(channel, tags === undefined ? { data } : { data, tags }, { skipHistory: readBool(params, 'skip_history') })
    .then((position) => (position.offset > 0 ? `{"offset":${position.offset},"epoch":${JSON.stringify(position.epoch)}}` : '{}'));
}

function errorJson(err: unknown): string {
  const error = toReplyError(err);
  return `{"error":${JSON.stringify({ code: error.code, message: error.message })}}`;
}

/** Converts a glob (`*`, `?`, `[...]`, `{a,b}`) into an anchored regular expression. */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  let inClass = false;
  let inAlternatives = false;
  for (const char of pattern) {
    if (inClass) {
      if (char === ']') inClass = false;
      source += char === '\\' ? '\\\\' : char;
    } else if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else if (char === '[') {
      source += '[';
      inClass = true;
    } else if (char === '{') {
      source += '(?:';
      inAlternatives = true;
    } else if (char === '}' && inAlternatives) {
      source += ')';
      inAlternatives = false;
    } else if (char === ',' && inAlternatives) source += '|';
    else source += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  try {
    return new RegExp(`^${source}$`, 's');
  } catch {
    throw new RotorError(Errors.badRequest, { detail: 'invalid channel pattern' });
  }
}

export const METHODS: Readonly<Record<string, ApiMethod>> = {
  ...CONNECTION_METHODS,

  async publish(node, params) {
    return publishOne(node, readString(params, 'channel', true), params);
  },

  async broadcast(node, params) {
    const channels = readStrings(params, 'channels');
    if (channels.length === 0) throw new RotorError(Errors.badRequest, { detail: 'missing "channels"' });
    readData(params);
    const responses = await Promise.all(
      channels.map((channel) =>
        publishOne(node, channel, params).then(
          (result) => `{"result":${result}}`,
          (err: unknown) => errorJson(err),
        ),
      ),
    );
    return `{"responses":[${responses.join(',')}]}`;
  },

  async history(node, params) {
    const channel = readString(params, 'channel', true);
    const since = readPosition(params, 'since');
    const query: HistoryQuery = { limit: readInt(params, 'limit', 0), reverse: readBool(params, 'reverse'), ...(since ? { since } : {}) };
    const result = await node.history(channel, query);
    return `{"publications":${encodePublications(result.publications, 'b64')},"epoch":${JSON.stringify(result.epoch)},"offset":${result.offset}}`;
  },

  async history_remove(node, params) {
    await node.historyRemove(readString(params, 'channel', true));
    return '{}';
  },

  async presence(node, params) {
    const presence = await node.presence(readString(params, 'channel', true));
    const entries = Object.entries(presence).map(([client, info]) => `${JSON.stringify(client)}:${encodeClientInfo(info)}`);
    return `{"presence":{${entries.join(',')}}}`;
  },

  async presence_stats(node, params) {
    const stats = await node.presenceStats(readString(params, 'channel', true));
    return JSON.stringify(stats);
  },

  async channels(node, params) {
    const pattern = readString(params, 'pattern');
    const matcher = pattern === '' ? undefined : globToRegExp(pattern);
    const entries: string[] = [];
    for (const [channel, count] of node.hub.channelCounts()) {
      if (matcher === undefined || matcher.test(channel)) entries.push(`${JSON.stringify(channel)}:{"num_clients":${count}}`);
    }
    return `{"channels":{${entries.join(',')}}}`;
  },

  async info(node) {
    const cpu = process.cpuUsage();
    const nodeInfo = {
      uid: node.uid,
      name: node.name,
      version: node.version,
      num_clients: node.hub.numClients,
      num_users: node.hub.numUsers,
      num_channels: node.hub.numChannels,
      num_subs: node.hub.numSubscriptions,
      uptime: node.uptime,
      // CPU is the average share of one core since start, in percent.
      process: { cpu: (cpu.user + cpu.system) / 10_000 / Math.max(1, node.uptime), rss: process.memoryUsage.rss() },
    };
    return JSON.stringify({ nodes: [nodeInfo] });
  },

  async batch(node, params) {
    const rawCommands = params.commands;
    if (!Array.isArray(rawCommands)) throw new RotorError(Errors.badRequest, { detail: '"commands" must be a list' });
    const runOne = async (raw: unknown): Promise<string> => {
      try {
        const command = asParams(raw, 'a batch command');
        const keys = Object.keys(command);
        const name = keys[0];
        if (keys.length !== 1 || name === undefined || name === 'batch') throw new RotorError(Errors.badRequest, { detail: 'a batch command must have one method field' });
        const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
        if (method === undefined) throw new RotorError(Errors.methodNotFound, { detail: `unknown method "${name}"` });
        return `{${JSON.stringify(name)}:${await method(node, asParams(command[name], `"${name}"`))}}`;
      } catch (err) {
        return errorJson(err);
      }
    };
    let replies: string[];
    if (readBool(params, 'parallel')) replies = await Promise.all(rawCommands.map(runOne));
    else {
      replies = [];
      for (const raw of rawCommands) replies.push(await runOne(raw));
    }
    return `{"replies":[${replies.join(',')}]}`;
  },
};

/** Legacy `/api` method numbers (Centrifugo's MethodType). */
export const LEGACY_METHOD_NAMES: readonly string[] = [
  'publish',
  'broadcast',
  'unsubscribe',
  'disconnect',
  'presence',
  'presence_stats',
  'history',
  'history_remove',
  'channels',
  'info',
  'rpc',
  'subscribe',
  'refresh',
];
