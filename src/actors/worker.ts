/**
 * The piscina task module of the actor pool. Each worker thread keeps the shards piscina
 * routes to it (the scheduler's load balancer sends a shard to one worker only) and opens
 * a shard's storage on its first task.
 */
import { join } from 'node:path';
import { threadId, workerData } from 'node:worker_threads';
import { ChannelResolver } from '../config/channels.js';
import { createLogger } from '../log.js';
import { MemoryHistoryStore } from '../storage/memory.js';
import { SqliteHistoryStore } from '../storage/sqlite.js';
import type { WorkerData, WorkerReply, WorkerTask } from './messages.js';
import { ShardActors } from './shard.js';

const { config, dataDir } = workerData as WorkerData;
const logger = createLogger(config.log_level, { worker: threadId });
const channels = new ChannelResolver(config);
const shards = new Map<number, ShardActors>();

function shardActors(shard: number): ShardActors {
  let actors = shards.get(shard);
  if (actors === undefined) {
    const store =
      config.history_storage === 'memory'
        ? new MemoryHistoryStore()
        : new SqliteHistoryStore(join(dataDir, `shard-${String(shard).padStart(4, '0')}.sqlite`));
    actors = new ShardActors(shard, store, config, channels, logger.child({ shard }));
    shards.set(shard, actors);
    logger.debug({ shard }, 'shard opened');
  }
  return actors;
}

export default function runTask(task: WorkerTask): WorkerReply {
  switch (task.type) {
    case 'batch':
      return shardActors(task.shard).run(task.commands);
    case 'sweep':
      shardActors(task.shard).sweep();
      return null;
    case 'close':
      shards.get(task.shard)?.close();
      shards.delete(task.shard);
      return null;
  }
}
