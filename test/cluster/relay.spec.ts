/**
 * Three gateway processes joined only by the Aphlict peer relay (no Redis), in a full mesh
 * where every node lists all three, itself included, plus a dead peer (a closed port) and a
 * hung one (accepts, never answers). Every socket must get each message exactly once.
 */
import {
  connectSocket,
  freePort,
  getStatus,
  messagesOf,
  notification,
  post,
  sleep,
  type GatewayProcess,
  type TestSocket,
} from '@tidings/testing';
import { startHungPeer, startMesh, type Mesh, type RelayPeerStatus } from './relay-mesh';

const PHID = 'PHID-USER-relay';

let nodes: GatewayProcess[] = [];
let mesh: Mesh;
const sockets: TestSocket[] = [];
/** Sockets per node, all subscribed to PHID. */
let byNode: TestSocket[][] = [];
/** A socket subscribed to something else: must get nothing. */
let bystander: TestSocket;
let hung: Awaited<ReturnType<typeof startHungPeer>>;
let deadPort: number;
/** Keys of every message published to PHID in this file, in order. */
const published: string[] = [];
const publishMs: number[] = [];
/** What each node had sent to itself once it knew itself. */
const selfSent: number[] = [];

async function peersOf(node: GatewayProcess): Promise<RelayPeerStatus[]> {
  return (await getStatus(node.adminUrl))['relay.peers'] as RelayPeerStatus[];
}

async function publish(node: GatewayProcess, message: Record<string, unknown>) {
  const started = performance.now();
  const res = await post(node.adminUrl, message);
  publishMs.push(performance.now() - started);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ fingerprint: node.fingerprint });
  published.push(message.key as string);
  return res;
}

/** Waits until every PHID socket has every published message, then a little longer for strays. */
async function allReceivedOnce(): Promise<void> {
  const everyone = byNode.flat();
  await Promise.all(
    everyone.map((s) =>
      s.waitFor(
        (r) => published.every((k) => messagesOf(r).some((m) => m.key === k)),
        10_000,
        `all ${published.length} messages`,
      ),
    ),
  );
  // Late duplicates would come through the relay within a few hundred ms.
  await sleep(400);
  await Promise.all(sockets.map((s) => s.roundTrip()));
  for (const s of everyone) {
    const keys = messagesOf(s.received).map((m) => m.key);
    expect(keys.sort()).toEqual([...published].sort());
  }
  expect(messagesOf(bystander.received)).toEqual([]);
}

beforeAll(async () => {
  hung = await startHungPeer();
  deadPort = await freePort(); // bound once, then closed: nothing listens there
  mesh = await startMesh(3, {
    extraPeers: [
      { host: '127.0.0.1', port: deadPort },
      { host: '127.0.0.1', port: hung.port },
    ],
    config: { relay: { timeoutMs: 1_000, retryMinMs: 100, retryMaxMs: 1_000 } },
  });
  nodes = mesh.nodes;
  byNode = [];
  for (const node of nodes) {
    const mine: TestSocket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await connectSocket(`${node.clientUrl}/~default/`);
      s.send('subscribe', [PHID]);
      mine.push(s);
      sockets.push(s);
    }
    byNode.push(mine);
  }
  bystander = await connectSocket(`${nodes[1].clientUrl}/`);
  bystander.send('subscribe', ['PHID-USER-other']);
  sockets.push(bystander);
  await Promise.all(sockets.map((s) => s.roundTrip()));
}, 60_000);

afterAll(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await hung?.close();
}, 30_000);

describe('relay-only cluster (3 nodes, full mesh, each lists itself, plus a dead and a hung peer)', () => {
  it('relay - a message published to each node in turn reaches every socket on every node exactly once', async () => {
    for (const node of nodes) await publish(node, notification([PHID]));
    await allReceivedOnce();
  });

  it('relay - every node recognises itself, learns the others by fingerprint, and never sends to itself again', async () => {
    const fingerprints = nodes.map((n) => n.fingerprint);
    for (const [i, node] of nodes.entries()) {
      const peers = await peersOf(node);
      expect(peers).toHaveLength(5);
      expect(peers.slice(0, 3).map((p) => p.fingerprint)).toEqual(fingerprints);
      expect(peers.slice(0, 3).map((p) => p.state)).toEqual(fingerprints.map((_, j) => (i === j ? 'self' : 'up')));
      selfSent[i] = peers[i].sent;
    }
  });

  it('relay - a dead and a hung peer neither delay the publisher nor the other peers, and show as down', async () => {
    for (let i = 0; i < 6; i++) await publish(nodes[i % 3], notification([PHID]));
    await allReceivedOnce();
    // Every publish in this file so far, including the first ones before any peer was known.
    expect(Math.max(...publishMs)).toBeLessThan(500);
    for (const node of nodes) {
      // The hung peer's first requests time out after relay.timeoutMs (1 s here).
      let peers = await peersOf(node);
      for (const deadline = Date.now() + 5_000; peers.some((p) => p.state === 'unknown') && Date.now() < deadline; ) {
        await sleep(100);
        peers = await peersOf(node);
      }
      const dead = peers.find((p) => p.peer === `127.0.0.1:${deadPort}`)!;
      const hungPeer = peers.find((p) => p.peer === `127.0.0.1:${hung.port}`)!;
      expect(dead).toMatchObject({ state: 'down', sent: 0 });
      expect(dead.failed).toBeGreaterThan(0);
      expect(dead.lastError).toMatch(/ECONNREFUSED/);
      expect(hungPeer.sent).toBe(0);
      expect(hungPeer.failed).toBeGreaterThan(0);
      expect(hungPeer.lastError).toBe('no answer within 1000 ms');
    }
    expect(hung.connections).toBeGreaterThan(0);
  });

  it('relay - non-ASCII text is relayed intact', async () => {
    const text = 'Grüße — 日本語のテキスト 🎉 ñandú';
    const message = notification([PHID], { title: text });
    await publish(nodes[2], message);
    await allReceivedOnce();
    for (const s of byNode.flat()) {
      expect(messagesOf(s.received).find((m) => m.key === message.key)!.title).toBe(text);
    }
  });

  it('relay - a message published without uniqueID reaches every socket once (the relay carries its id)', async () => {
    const message = notification([PHID]);
    delete message.uniqueID;
    await publish(nodes[1], message);
    await allReceivedOnce();
    const frame = messagesOf(byNode[0][0].received).find((m) => m.key === message.key)!;
    expect(frame.uniqueID).toBeUndefined();
    expect(frame.touched).toEqual(expect.arrayContaining([nodes[1].fingerprint]));
  });

  it('relay - replay on another node returns relayed messages once each', async () => {
    for (const node of nodes) {
      const s = await connectSocket(`${node.clientUrl}/~default/`);
      sockets.push(s);
      s.send('subscribe', [PHID]);
      s.send('replay', { age: 60_000 });
      await s.waitFor((r) => messagesOf(r).length >= published.length, 5_000, 'replay');
      await sleep(200);
      await s.roundTrip();
      expect(messagesOf(s.received).map((m) => m.key).sort()).toEqual([...published].sort());
      const status = await getStatus(node.adminUrl);
      expect(status['history.size']).toBe(published.length);
    }
  });

  it('relay - a JSON array body is refused with 400 and starts no relay (no storm between nodes)', async () => {
    const before = await Promise.all(nodes.map(async (n) => (await peersOf(n)).map((p) => p.sent + p.failed + p.queued + p.inFlight)));
    const res = await post(nodes[0].adminUrl, [notification([PHID])]);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'not_an_object' });
    await sleep(500);
    // Only the down peers' retries may move; the three nodes exchanged nothing.
    const after = await Promise.all(nodes.map(async (n) => (await peersOf(n)).map((p) => p.sent + p.failed + p.queued + p.inFlight)));
    expect(after.map((a) => a.slice(0, 3))).toEqual(before.map((b) => b.slice(0, 3)));
    for (const node of nodes) expect((await getStatus(node.adminUrl))['history.size']).toBe(published.length);
    await Promise.all(sockets.map((s) => s.roundTrip()));
    for (const s of byNode.flat()) expect(messagesOf(s.received)).toHaveLength(published.length);
    // Many messages later, no node has sent anything more to itself.
    for (const [i, node] of nodes.entries()) expect((await peersOf(node))[i]).toMatchObject({ state: 'self', sent: selfSent[i] });
  });

  it('relay - a node killed and restarted on its address is marked down, then relearned under its new fingerprint', async () => {
    const oldFingerprint = nodes[2].fingerprint;
    await nodes[2].kill();
    const whileDown = notification([PHID]);
    expect((await post(nodes[0].adminUrl, whileDown)).status).toBe(200);
    await Promise.all(byNode[1].map((s) => s.waitFor((r) => messagesOf(r).some((m) => m.key === whileDown.key), 5_000, 'message while a node is down')));
    // The relay to the dead node fails on its own time (a kept-alive socket is first retried
    // on a fresh one), independently of delivery to node 1: wait for the verdict, bounded.
    let downView = (await peersOf(nodes[0]))[2];
    for (const deadline = Date.now() + 5_000; downView.state !== 'down' && Date.now() < deadline; ) {
      await sleep(50);
      downView = (await peersOf(nodes[0]))[2];
    }
    expect(downView.state).toBe('down');
    expect(downView.lastError).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);

    const restarted = await mesh.respawn(2);
    expect(restarted.fingerprint).not.toBe(oldFingerprint);
    const fresh = await connectSocket(`${restarted.clientUrl}/~default/`);
    sockets.push(fresh);
    fresh.send('subscribe', [PHID]);
    await fresh.roundTrip();
    const afterRestart = notification([PHID]);
    expect((await post(nodes[0].adminUrl, afterRestart)).status).toBe(200);
    await fresh.waitFor((r) => messagesOf(r).some((m) => m.key === afterRestart.key), 5_000, 'message after restart');
    await sleep(400);
    await fresh.roundTrip();
    expect(messagesOf(fresh.received).filter((m) => m.key === afterRestart.key)).toHaveLength(1);
    const upView = (await peersOf(nodes[0]))[2];
    expect(upView).toMatchObject({ state: 'up', fingerprint: restarted.fingerprint });
    // The others' sockets got both messages once.
    await Promise.all([...byNode[0], ...byNode[1]].map((s) => s.roundTrip()));
    for (const s of [...byNode[0], ...byNode[1]]) {
      for (const key of [whileDown.key, afterRestart.key]) expect(messagesOf(s.received).filter((m) => m.key === key)).toHaveLength(1);
    }
  });
});

