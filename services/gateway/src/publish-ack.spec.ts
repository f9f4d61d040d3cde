/**
 * What a 200 promises with shared history: the message is in Redis. A gateway in this
 * process on a Redis server of its own, whose writes the test pauses (CLIENT PAUSE WRITE)
 * so that a first copy of a message is still being stored when a duplicate arrives.
 */
import { Redis } from 'ioredis';
import { resolveConfig, silentLogger } from '@tidings/protocol';
import { connectSocket, messagesOf, post, startRedisServer, sleep, type RedisHandle, type TestSocket } from '@tidings/testing';
import { Gateway } from './gateway';
import { createCollaborators } from './wiring';

let redis: RedisHandle;
let control: Redis;
let gw: Gateway;
let socket: TestSocket;
let run = 0;
let prefix = '';

beforeAll(async () => {
  redis = await startRedisServer();
  control = new Redis(redis.url);
});
afterAll(async () => {
  control.disconnect();
  await redis.stop();
});

async function start(commandTimeoutMs: number): Promise<void> {
  prefix = `ack-${process.pid}-${++run}:`;
  const config = resolveConfig({
    servers: [
      { type: 'client', port: 0, listen: '127.0.0.1' },
      { type: 'admin', port: 0, listen: '127.0.0.1' },
    ],
    redis: { url: redis.url, keyPrefix: prefix, commandTimeoutMs },
  });
  gw = await new Gateway({ config, logger: silentLogger, ...createCollaborators(config, silentLogger) }).start();
  socket = await connectSocket(gw.url('client'));
  socket.send('subscribe', ['PHID-ACK']);
  await socket.roundTrip();
}

afterEach(async () => {
  socket?.ws.terminate();
  await gw?.close();
  await control.client('UNPAUSE');
});

/** The message keys stored in the default instance's shared history. */
async function storedKeys(): Promise<string[]> {
  const members = await control.zrange(`{${prefix}h:default}:log:default`, 0, -1);
  return members.map((m) => (JSON.parse(m.slice(16)) as { frame: string }).frame).map((f) => (JSON.parse(f) as { key: string }).key);
}

describe('publish acknowledgements with shared history', () => {
  it('answers a duplicate only once the first copy is stored', async () => {
    await start(5_000);
    await control.client('PAUSE', 400, 'WRITE');
    const message = { subscribers: ['PHID-ACK'], key: 'slow', uniqueID: 'dup-wait-1' };
    const first = post(gw.url('admin'), message);
    await sleep(100);
    const duplicate = await post(gw.url('admin'), message);
    // Whatever it answers, it may not claim more than is true at the moment it answers.
    const storedWhenAnswered = await storedKeys();
    expect(duplicate.status).toBe(200);
    expect(storedWhenAnswered).toEqual(['slow']);
    expect((await first).status).toBe(200);
    await socket.roundTrip();
    expect(messagesOf(socket.received).map((m) => m.key)).toEqual(['slow']);
  });

  it('shares a failed store with the duplicate that waited for it; a later retry stores it, delivered once', async () => {
    await start(300);
    await control.client('PAUSE', 1_000, 'WRITE');
    const message = { subscribers: ['PHID-ACK'], key: 'failing', uniqueID: 'dup-fail-1' };
    const first = post(gw.url('admin'), message);
    await sleep(100);
    const duplicate = await post(gw.url('admin'), message);
    expect(duplicate.status).toBe(503);
    expect(duplicate.body).toMatchObject({ error: 'history_unavailable' });
    expect((await first).status).toBe(503);
    await control.client('UNPAUSE');
    const retry = await post(gw.url('admin'), message);
    expect(retry.status).toBe(200);
    expect(await storedKeys()).toEqual(['failing']);
    await socket.roundTrip();
    expect(messagesOf(socket.received).map((m) => m.key)).toEqual(['failing']);
  });
});
