/**
 * RedisHistory with `waitReplicas`, on a real master and replica (two redis-server processes,
 * `replicaof`): an append is acknowledged only once the replica holds it, in one round trip;
 * with the replica gone it is refused, naming the operation, as any failed store.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Envelope } from '@tidings/protocol';
import { startReplicatedRedis, waitForReplicaLink, waitForReplicasAcknowledging, type ReplicatedRedisHandle } from '@tidings/testing';
import { HistoryError, RedisHistory } from './redis-history';

let redis: ReplicatedRedisHandle;
const clients: Redis[] = [];
/** A connection as the gateway makes them: fail fast while disconnected. */
const client = (url: string, options: RedisOptions = {}) => {
  const c = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, ...options });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
};
const ready = (c: Redis) => new Promise<void>((resolve) => (c.status === 'ready' ? resolve() : c.once('ready', () => resolve())));

beforeAll(async () => {
  redis = await startReplicatedRedis(1);
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

let run = 0;
const freshKeys = () => {
  const prefix = `tidings-test:${process.pid}:rr${++run}:`;
  return {
    historyLog: (instance: string) => `{${prefix}${instance}}:log`,
    historyMeta: (instance: string) => `{${prefix}${instance}}:meta`,
    historySeen: (instance: string, id: string) => `{${prefix}${instance}}:seen:${id}`,
  };
};
const envelope = (id: string): Envelope => ({
  id,
  instance: 'default',
  subscribers: ['PHID-USER-a'],
  frame: JSON.stringify({ subscribers: ['PHID-USER-a'], key: id }),
  acceptedAt: Date.now(),
});
const idsIn = async (c: Redis, log: string) => (await c.zrange(log, 0, -1)).map((m) => (JSON.parse(m.slice(16)) as Envelope).id);

/** WAIT commands the master has run so far (INFO commandstats). */
async function waitsRun(c: Redis): Promise<number> {
  const match = /cmdstat_wait:calls=(\d+)/.exec(await c.info('commandstats'));
  return match ? Number(match[1]) : 0;
}

/** How many times `c` writes to its socket while `action` runs. */
async function writesDuring(c: Redis, action: () => Promise<unknown>): Promise<number> {
  const stream = c.stream;
  const write = stream.write;
  let writes = 0;
  stream.write = function (this: typeof stream, ...args: Parameters<typeof write>) {
    writes++;
    return write.apply(this, args);
  } as typeof write;
  try {
    await action();
  } finally {
    stream.write = write;
  }
  return writes;
}

describe('RedisHistory - waitReplicas', () => {
  it('acknowledges an append only once the replica holds it, script and WAIT in one write', async () => {
    const keys = freshKeys();
    const master = client(redis.master.url);
    const replica = client(redis.replicas[0].url);
    await Promise.all([ready(master), ready(replica)]);
    const history = new RedisHistory({ client: master, keys, waitReplicas: 1, commandTimeoutMs: 2_000 });
    await history.appendOnce(envelope('warm-up')); // the first use of the connection sends the script itself
    const waitsBefore = await waitsRun(master);
    let stored: Awaited<ReturnType<RedisHistory['appendOnce']>> | undefined;
    const writes = await writesDuring(master, async () => {
      stored = await history.appendOnce(envelope('a'));
    });
    // Read from the replica the moment the append resolved: it is there, not "soon".
    expect(await idsIn(replica, keys.historyLog('default'))).toEqual(['warm-up', 'a']);
    expect(stored).toMatchObject({ offset: 2 });
    expect(writes).toBe(1);
    expect(await waitsRun(master)).toBe(waitsBefore + 1);
    // A duplicate is waited for as well (its first copy may still be on its way to the replica).
    expect(await history.appendOnce(envelope('a'))).toBeNull();
    expect(await waitsRun(master)).toBe(waitsBefore + 2);
  });

  it('with waitReplicas 0 (the default) sends no WAIT: one command per append, as before', async () => {
    const master = client(redis.master.url);
    await ready(master);
    const history = new RedisHistory({ client: master, keys: freshKeys() });
    await history.appendOnce(envelope('warm-up'));
    const waitsBefore = await waitsRun(master);
    const writes = await writesDuring(master, () => history.appendOnce(envelope('b')));
    expect(writes).toBe(1);
    expect(await waitsRun(master)).toBe(waitsBefore);
  });

  it('refuses an append no replica confirmed in time, naming the operation; acknowledges again once the replica is back', async () => {
    const keys = freshKeys();
    const master = client(redis.master.url);
    const appends = client(redis.master.url);
    await Promise.all([ready(master), ready(appends)]);
    const history = new RedisHistory({ client: master, appendClient: appends, keys, waitReplicas: 1, commandTimeoutMs: 1_000 });
    const unwaited = new RedisHistory({ client: master, keys });
    await history.appendOnce(envelope('before'));

    await redis.replicas[0].kill();
    try {
      const started = Date.now();
      const refused = history.appendOnce(envelope('during'));
      await expect(refused).rejects.toBeInstanceOf(HistoryError);
      await expect(refused).rejects.toThrow(/^history append: 0 of 1 replicas confirmed the write within 750 ms \(WAIT\)$/);
      expect(Date.now() - started).toBeLessThan(1_500);
      // Reads run on their own connection, not behind a WAIT: a replay is answered at once.
      const blocked = history.appendOnce(envelope('during-2')).catch((err: Error) => err);
      const readStarted = Date.now();
      expect((await history.recent('default', 60_000)).map((e) => e.id)).toEqual(expect.arrayContaining(['before', 'during']));
      expect(Date.now() - readStarted).toBeLessThan(250);
      expect(await blocked).toBeInstanceOf(HistoryError);
      // Positive control: the same master, the same missing replica, no WAIT: acknowledged.
      expect(await unwaited.appendOnce(envelope('unwaited'))).not.toBeNull();
    } finally {
      await redis.replicas[0].start();
    }
    await waitForReplicaLink(redis.replicas[0].port);
    await waitForReplicasAcknowledging(redis.master.port, 1);
    // The refused message was stored on the master; its retry is acknowledged once replicated.
    expect(await history.appendOnce(envelope('during'))).toBeNull();
    expect(await history.appendOnce(envelope('after'))).not.toBeNull();
    const replica = client(redis.replicas[0].url);
    await ready(replica);
    expect(await idsIn(replica, keys.historyLog('default'))).toEqual(['before', 'during', 'during-2', 'unwaited', 'after']);
  });

  it('counts the replicas that confirmed: more asked than exist is refused with the number that did', async () => {
    const master = client(redis.master.url);
    await ready(master);
    const history = new RedisHistory({ client: master, keys: freshKeys(), waitReplicas: 2, commandTimeoutMs: 1_000 });
    await expect(history.appendOnce(envelope('c'))).rejects.toThrow(/^history append: 1 of 2 replicas confirmed the write within 750 ms/);
  });

  it('fails fast, naming the operation, when the master itself is down', async () => {
    const own = await startReplicatedRedis(1);
    try {
      const master = client(own.master.url);
      await ready(master);
      const history = new RedisHistory({ client: master, keys: freshKeys(), waitReplicas: 1, commandTimeoutMs: 2_000 });
      await history.appendOnce(envelope('up'));
      await own.master.kill();
      const started = Date.now();
      await expect(history.appendOnce(envelope('down'))).rejects.toThrow(/^history append: /);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await own.stop();
    }
  });

  it.each([
    [0, 'acknowledged, then lost'],
    [1, 'refused'],
  ])('a failover after the replica fell behind (waitReplicas %i): a write the replica lacks is %s', async (waitReplicas) => {
    const own = await startReplicatedRedis(1);
    const [replica] = own.replicas;
    try {
      const keys = freshKeys();
      const master = client(own.master.url);
      await ready(master);
      const history = new RedisHistory({ client: master, keys, waitReplicas, commandTimeoutMs: 1_000 });
      await history.appendOnce(envelope('replicated'));
      // Whatever the history's own setting, the replica has this one before it falls behind.
      expect(await master.call('WAIT', '1', '2000')).toBe(1);
      // The replica stops reading and the master drops it: what the master stores now reaches
      // no replica, and the replica cannot come back for it (as behind a partition).
      replica.pause();
      await master.call('CLIENT', 'KILL', 'TYPE', 'replica');
      const outcome = await history.appendOnce(envelope('unreplicated')).then(
        () => 'acknowledged',
        (err: Error) => err.message,
      );
      await own.master.kill();
      replica.resume();
      // Promote the replica, as Sentinel would.
      const promoted = client(replica.url);
      await ready(promoted);
      await promoted.call('REPLICAOF', 'NO', 'ONE');
      const kept = await idsIn(promoted, keys.historyLog('default'));
      expect(kept).toEqual(['replicated']);
      if (waitReplicas === 0) expect(outcome).toBe('acknowledged'); // the loss waitReplicas prevents
      else expect(outcome).toBe('history append: 0 of 1 replicas confirmed the write within 750 ms (WAIT)');
    } finally {
      replica.resume();
      await own.stop();
    }
  });

  it('refuses a waitReplicas that is not a whole number of replicas', () => {
    const master = client(redis.master.url, { lazyConnect: true });
    expect(() => new RedisHistory({ client: master, keys: freshKeys(), waitReplicas: 1.5 })).toThrow(/waitReplicas/);
    expect(() => new RedisHistory({ client: master, keys: freshKeys(), waitReplicas: -1 })).toThrow(/waitReplicas/);
  });
});
