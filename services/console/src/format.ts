/** How figures read on the page. Pure functions. */

/** 93 s -> "1 min 33 s", 2 h 5 min -> "2 h 5 min", 3 d 4 h -> "3 d 4 h". */
export function duration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '—';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1_000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A rate per second: two decimals below 10, one below 100, none above. */
export function rate(perSecond: number): string {
  if (perSecond < 10) return perSecond.toFixed(2);
  if (perSecond < 100) return perSecond.toFixed(1);
  return Math.round(perSecond).toLocaleString('en');
}

export function count(n: number): string {
  return n.toLocaleString('en');
}

export function ms(value: number): string {
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** PHIDs typed as a list: spaces, commas or new lines between them; duplicates dropped. */
export function parsePhids(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** 32 random characters, as Phorge's uniqueID. */
export function uniqueId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/** `ws://host:port` for a client server, with this page's host name when it listens on every interface. */
export function clientUrl(server: { listen: string; port: number; tls: boolean }, pageHost: string): string {
  const wildcard = server.listen === '0.0.0.0' || server.listen === '::' || server.listen === '';
  const host = wildcard ? pageHost : server.listen;
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${server.tls ? 'wss' : 'ws'}://${shown}:${server.port}`;
}
