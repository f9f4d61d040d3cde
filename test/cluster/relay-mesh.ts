/**
 * Gateway processes joined by the Aphlict peer relay only (no Redis). Ports are picked
 * before start, so each node's `cluster` can list every node, itself included, as a real
 * Aphlict deployment does.
 */
import net from 'node:net';
import { freePort, spawnGateway, type GatewayProcess } from '@tidings/testing';

export interface MeshOptions {
  /** Extra `cluster` entries every node lists (dead or hung peers). */
  extraPeers?: { host: string; port: number }[];
  /** Extra config keys for every node. */
  config?: Record<string, unknown>;
}

export async function startMesh(count: number, options: MeshOptions = {}): Promise<GatewayProcess[]> {
  const ports: { client: number; admin: number }[] = [];
  for (let i = 0; i < count; i++) ports.push({ client: await freePort(), admin: await freePort() });
  const cluster = [
    ...ports.map((p) => ({ host: '127.0.0.1', port: p.admin, protocol: 'http' })),
    ...(options.extraPeers ?? []).map((p) => ({ ...p, protocol: 'http' })),
  ];
  // Started one by one: the two cores are shared, and a port taken meanwhile fails loudly.
  const nodes: GatewayProcess[] = [];
  try {
    for (const p of ports) {
      nodes.push(await spawnGateway({ clientPort: p.client, adminPort: p.admin, config: { cluster, ...options.config } }));
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }
  return nodes;
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers: a hung peer. */
export async function startHungPeer(): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { port: 0, connections: 0, close: async () => undefined as void };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and discard the request
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

export interface RelayPeerStatus {
  peer: string;
  state: string;
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
  inFlight: number;
  lastError: string | null;
  fingerprint: string | null;
}
