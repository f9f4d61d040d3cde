/** A raw Aphlict WebSocket client for tests: collects every frame it receives. */
import WebSocket from 'ws';

export interface TestSocket {
  ws: WebSocket;
  /** Parsed frames received, in order. */
  received: Record<string, unknown>[];
  send(command: string, data?: unknown): void;
  sendRaw(text: string): void;
  /** Waits until `predicate` holds over the received frames. */
  waitFor(predicate: (received: Record<string, unknown>[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Sends a ping and waits for the pong: everything sent before it has been processed. */
  roundTrip(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
}

export async function connectSocket(url: string): Promise<TestSocket> {
  const ws = new WebSocket(url);
  const received: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('message', (data) => {
    try {
      received.push(JSON.parse(data.toString()));
    } catch {
      received.push({ unparsed: data.toString() });
    }
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => undefined);
  const socket: TestSocket = {
    ws,
    received,
    closed,
    send(command, data) {
      ws.send(JSON.stringify(data === undefined ? { command } : { command, data }));
    },
    sendRaw(text) {
      ws.send(text);
    },
    waitFor(predicate, timeoutMs = 5_000, what = 'condition') {
      if (predicate(received)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (predicate(received)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(received).slice(0, 500)}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async roundTrip(timeoutMs = 5_000) {
      const pongs = received.filter((f) => f.type === 'pong').length;
      socket.send('ping');
      await socket.waitFor((r) => r.filter((f) => f.type === 'pong').length > pongs, timeoutMs, 'pong');
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await closed;
    },
  };
  return socket;
}

/** Frames that are not pongs. */
export function messagesOf(received: Record<string, unknown>[]): Record<string, unknown>[] {
  return received.filter((f) => f.type !== 'pong');
}
