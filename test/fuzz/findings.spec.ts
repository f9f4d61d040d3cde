/**
 * What the fuzzers found, each as one deterministic scenario against a real gateway process
 * (the fuzzers' shrunk counterexamples, made plain). Each test states the contract and fails
 * on the code the fuzzers ran against.
 */
import { io, type Socket } from 'socket.io-client';
import { getStatus, spawnGateway, type GatewayProcess } from '@tidings/testing';
import { deepJsonText } from './arbitraries';

const gateways: GatewayProcess[] = [];
const clients: Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(gateways.splice(0).map((g) => g.kill()));
});

async function publishRaw(gateway: GatewayProcess, body: string): Promise<{ status: number; text: string } | 'no answer within 3 s'> {
  try {
    const res = await fetch(`${gateway.adminUrl}/`, { method: 'POST', body, signal: AbortSignal.timeout(3_000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return 'no answer within 3 s';
  }
}

describe('findings of the fuzzers', () => {
  it('admin - a publish nested thousands of levels deep is answered below 500, and so is a later copy of its uniqueID', async () => {
    // admin.fuzz shrank to {"subscribers":["PHID-FUZZ-A"],"deep":[[[...]]]} at 4,112 levels:
    // JSON.parse takes it, JSON.stringify of the envelope overflows the stack.
    const gateway = await spawnGateway();
    gateways.push(gateway);
    const deep = `{"subscribers":["PHID-FUZZ-A"],"uniqueID":"deep-1","deep":${deepJsonText(10_000, 'array')}}`;
    const first = await publishRaw(gateway, deep);
    // Positive control: a shallow message with another id is accepted.
    const other = await publishRaw(gateway, '{"subscribers":["PHID-FUZZ-A"],"uniqueID":"shallow-1"}');
    // The same id again (a publisher's retry, a peer's relayed copy): answered, not left hanging.
    const retry = await publishRaw(gateway, '{"subscribers":["PHID-FUZZ-A"],"uniqueID":"deep-1"}');
    // Refused with a 4xx or taken: either is the gateway's call; a 5xx is not, nor no answer.
    const kind = (r: typeof first) => (typeof r === 'string' ? r : r.status < 500 ? 'answered' : String(r.status));
    expect({ first: kind(first), other: typeof other === 'string' ? other : other.status, retry: kind(retry) }).toEqual({
      first: 'answered',
      other: 200,
      retry: 'answered',
    });
  });

  it('socket.io - a client that leaves the namespace (a raw DISCONNECT packet) does not keep connections past limits.maxConnections', async () => {
    // socketio.fuzz: after `1` the engine.io connection stays open, and uncounted.
    const gateway = await spawnGateway({ config: { limits: { maxConnections: 2 } } });
    gateways.push(gateway);
    for (let i = 0; i < 5; i++) {
      const s = io(`http://127.0.0.1:${gateway.clientPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      clients.push(s);
      const outcome = await new Promise<string>((resolve) => {
        s.once('connect', () => resolve('connect'));
        s.once('connect_error', (err) => resolve(err.message));
      });
      if (outcome !== 'connect') continue;
      s.io.engine.write('1');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    const open = clients.filter((s) => s.io.engine?.readyState === 'open').length;
    // Positive control: the node itself counts none of them any more.
    expect(((await getStatus(gateway.adminUrl)).socketio as { active: number }).active).toBe(0);
    // At most the limit may stay open, whether the others were refused at the door or closed.
    expect(open).toBeLessThanOrEqual(2);
  });
});
