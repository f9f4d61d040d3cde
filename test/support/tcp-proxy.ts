/**
 * A TCP proxy on 127.0.0.1 in front of a real server, for faults a real network has and a
 * local server does not: a connection that stays open but stops carrying anything (a
 * silently dead peer, a subscription lost in a broken middlebox). Each connection can be
 * frozen on its own, picked by what its client sent (e.g. the connection name a Redis
 * client sets); frozen bytes are held, never delivered. New connections flow normally.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxiedConnection {
  /** Everything the client sent so far (the first KiB), to tell connections apart. */
  readonly hello: string;
  frozen: boolean;
  readonly client: Socket;
  readonly upstream: Socket;
}

export interface TcpProxy {
  port: number;
  url(scheme: string): string;
  readonly connections: ProxiedConnection[];
  /** Freezes the open connections whose client sent text matching `pattern`; returns how many. */
  freeze(pattern: RegExp): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const conn = { hello: '', frozen: false, client, upstream };
    connections.push(conn);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      const i = connections.indexOf(conn);
      if (i !== -1) connections.splice(i, 1);
    };
    client.on('data', (chunk: Buffer) => {
      if (conn.hello.length < 1024) conn.hello += chunk.toString('latin1').slice(0, 1024 - conn.hello.length);
      if (!conn.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!conn.frozen) client.write(chunk);
    });
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    connections,
    freeze(pattern) {
      let n = 0;
      for (const c of connections) {
        if (pattern.test(c.hello)) {
          c.frozen = true;
          n++;
        }
      }
      return n;
    },
    async close() {
      for (const c of [...connections]) {
        c.client.destroy();
        c.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
