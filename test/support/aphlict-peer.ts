/**
 * A peer that speaks the admin relay as Phorge's Aphlict does, for mixed-cluster tests: it
 * answers POST / with its receipt, skips messages whose `touched` holds its fingerprint,
 * appends its fingerprint and relays to its `cluster` peers as `POST /?instance=...` with no
 * token and no Tidings header, from a chosen local address (so a gateway can allow it by
 * address). Written here from the protocol (DESIGN.md), not from Aphlict's code.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AphlictPeer {
  port: number;
  fingerprint: string;
  /** Messages it accepted (not touched), with the instance and the headers they came with. */
  received: { instance: string; message: Record<string, unknown>; headers: Record<string, string | string[] | undefined> }[];
  /** Relay requests it sent and what they got. */
  relayed: { to: number; status: number }[];
  /** Its cluster: admin ports of peers on 127.0.0.1. */
  peers: number[];
  close(): Promise<void>;
}

export async function startAphlictPeer(options: { fingerprint?: string; peers?: number[]; localAddress?: string } = {}): Promise<AphlictPeer> {
  const fingerprint = options.fingerprint ?? `aphlict${Math.random().toString(36).slice(2, 11)}`;
  const peer: AphlictPeer = { port: 0, fingerprint, received: [], relayed: [], peers: options.peers ?? [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/' || req.method !== 'POST') {
      res.writeHead(url.pathname === '/' ? 405 : 404);
      return res.end();
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(body) as Record<string, unknown>;
      } catch {
        res.writeHead(400);
        return res.end();
      }
      const instance = url.searchParams.get('instance') || 'default';
      const touched = Array.isArray(message.touched) ? (message.touched as string[]) : [];
      if (!touched.includes(fingerprint)) {
        peer.received.push({ instance, message: structuredClone(message), headers: req.headers });
        const onward = { ...message, touched: [...touched, fingerprint] };
        for (const to of peer.peers) relay(to, instance, JSON.stringify(onward));
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ fingerprint }));
    });
  });
  const relay = (to: number, instance: string, text: string) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: to,
        method: 'POST',
        path: `/?instance=${encodeURIComponent(instance)}`,
        localAddress: options.localAddress,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) },
      },
      (res) => {
        peer.relayed.push({ to, status: res.statusCode ?? 0 });
        res.resume();
      },
    );
    req.on('error', () => peer.relayed.push({ to, status: 0 }));
    req.end(text);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  peer.port = (server.address() as AddressInfo).port;
  peer.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return peer;
}
