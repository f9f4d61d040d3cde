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

export interface Mesh {
  nodes: GatewayProcess[];
  /** Starts node `index` again on its ports with its config (after a kill); replaces it in `nodes`. */
  respawn(index: number): Promise<GatewayProcess>;
}

export async function startMesh(count: number, options: MeshOptions = {}): Promise<Mesh> {
  const ports: { client: number; admin: number }[] = [];
  for (let i = 0; i < count; i++) ports.push({ client: await freePort(), admin: await freePort() });
  const cluster = [
    ...ports.map((p) => ({ host: '127.0.0.1', port: p.admin, protocol: 'http' })),
    ...(options.extraPeers ?? []).map((p) => ({ ...p, protocol: 'http' })),
  ];
  const spawnAt = (i: number) =>
    spawnGateway({ clientPort: ports[i].client, adminPort: ports[i].admin, config: { cluster, ...options.config } });
  // Started one by one: the two cores are shared, and a port taken meanwhile fails loudly.
  const nodes: GatewayProcess[] = [];
  try {
    for (let i = 0; i < count; i++) nodes.push(await spawnAt(i));
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }
  return {
    nodes,
    async respawn(index) {
      nodes[index] = await spawnAt(index);
      return nodes[index];
    },
  };
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

/** A peer's entry in /status/ `relay.peers` (JSON of the relay's own status type). */
export type { PeerStatus as RelayPeerStatus } from '@tidings/relay';
