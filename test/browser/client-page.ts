/**
 * The test page's script: @tidings/client as a web application uses it, bundled for the
 * browser (harness.ts) and driven by the specs through `globalThis.tidingsPage`. Runs in
 * Chromium: the page's own WebSocket and fetch, no Node API.
 */
import { connect, TidingsAuthError, type ClientStatus, type Position, type TidingsClient, type TransportName } from '@tidings/client';

export interface PageClientOptions {
  transport: TransportName;
  instance?: string;
  /** Same-origin path that answers a fresh connection token (the page's getToken fetches it). */
  tokenPath?: string;
  reconnect?: { initialDelayMs: number; maxDelayMs: number };
}

export interface PageState {
  /** The client's current URL (never shows a token). */
  url: string;
  isOpen: boolean;
  /** `key` of every message the application was handed, in order. */
  keys: string[];
  /** The position each message came with (null without one). */
  positions: (Position | null)[];
  statuses: ClientStatus[];
  errors: { name: string; code?: string; message: string }[];
  stats: { received: number; duplicates: number; reconnects: number; replays: number };
  /** Tokens getToken() fetched, in order (the spec compares them with what the server minted). */
  tokens: string[];
  /** Whether the page has a native WebSocket (the client's raw transport uses it). */
  nativeWebSocket: boolean;
}

export interface TidingsPage {
  start(urls: string[], options: PageClientOptions): void;
  waitForOpen(timeoutMs: number): Promise<void>;
  subscribe(phids: string[]): Promise<void>;
  state(): PageState;
  close(): Promise<void>;
}

let client: TidingsClient | undefined;
const state: Omit<PageState, 'url' | 'isOpen' | 'stats'> = {
  keys: [],
  positions: [],
  statuses: [],
  errors: [],
  tokens: [],
  nativeWebSocket: typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function',
};

function current(): TidingsClient {
  if (!client) throw new Error('tidingsPage.start() was not called');
  return client;
}

const page: TidingsPage = {
  start(urls, options) {
    const tokenPath = options.tokenPath;
    client = connect(urls, {
      transport: options.transport,
      instance: options.instance,
      reconnect: options.reconnect,
      getToken: tokenPath
        ? async () => {
            // The endpoint answers `cache-control: no-store`: every call is a new token.
            const res = await fetch(tokenPath, { credentials: 'same-origin' });
            if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
            const token = await res.text();
            state.tokens.push(token);
            return token;
          }
        : undefined,
    });
    client.on('message', (message, position) => {
      state.keys.push(String(message.key));
      state.positions.push(position ?? null);
    });
    client.on('status', (status) => state.statuses.push(status));
    client.on('error', (err) =>
      state.errors.push({ name: err.name, code: err instanceof TidingsAuthError ? err.code : undefined, message: err.message }),
    );
  },
  waitForOpen: (timeoutMs) => current().waitForOpen(timeoutMs),
  subscribe: (phids) => current().subscribe(phids),
  state: () => {
    const c = current();
    return { ...state, url: c.url, isOpen: c.isOpen, stats: { ...c.stats } };
  },
  close: () => current().close(),
};

(globalThis as unknown as { tidingsPage: TidingsPage }).tidingsPage = page;
