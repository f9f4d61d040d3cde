/** Publishing to an admin server in tests. */
export interface PublishResponse {
  status: number;
  body: Record<string, unknown> | null;
  text: string;
  headers: Headers;
}

export async function post(adminUrl: string, body: unknown, options: { instance?: string; raw?: boolean; headers?: Record<string, string> } = {}): Promise<PublishResponse> {
  const url = new URL(adminUrl);
  url.pathname = '/';
  if (options.instance !== undefined) url.searchParams.set('instance', options.instance);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...options.headers },
    body: options.raw ? (body as string) : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> | null = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

export async function getStatus(adminUrl: string, instance?: string): Promise<Record<string, unknown>> {
  const url = new URL(adminUrl);
  url.pathname = '/status/';
  if (instance !== undefined) url.searchParams.set('instance', instance);
  const res = await fetch(url);
  return (await res.json()) as Record<string, unknown>;
}

let counter = 0;
/** A message shaped like Phorge's, with a fresh uniqueID. */
export function notification(subscribers: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  counter++;
  return {
    type: 'notification',
    key: String(1000 + counter),
    subscribers,
    uniqueID: `${process.pid}-${Date.now()}-${counter}-${Math.random().toString(36).slice(2, 10)}`,
    ...extra,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
