/**
 * Fuzz: the admin port of one long-lived gateway process with Redis. Each case is one HTTP
 * request (any method, odd paths and queries, any Content-Type, chunked or not, odd headers;
 * a body that is any JSON value, a publish with mutated fields, text, random bytes, deep
 * nesting, or a body past limits.maxBodyBytes) or raw bytes over TCP (broken request lines,
 * bad framing, truncated bodies).
 *
 * Invariants, per case: no 5xx (Redis is up; /readyz may say 503 "unready", its contract);
 * a POST / is answered exactly as the contract says: 413 past the body limit, 400 with
 * {error, message} for an invalid instance, a body that is not JSON, not an object, or has
 * bad `subscribers`, nesting over 64 levels, a `uniqueID` over 128 characters or bad
 * `touched`, else 200 with the node's fingerprint; raw requests get an answer
 * or a close within 3 s (no hang); the process lives and logs no error. Every 100 cases no
 * contained defect was counted (/status/ errors.internal); every 500 cases and at the end,
 * the probe proves it delivers.
 */
import http from 'node:http';
import net from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import fc from 'fast-check';
import { deepJsonText, jsonArb, phidListArb } from './arbitraries';
import { failureMessage, FUZZ_RUNS, FuzzGateway, fuzzTimeoutMs, isComplete, runFuzz } from './harness';

const MAX_BODY_BYTES = 65_536;
/** The documented instance rule: 1 to 128 characters, no white space, control characters, `/` or `~`. */
const VALID_INSTANCE = /^[^\s/~\p{Cc}]{1,128}$/u;
const MAX_INSTANCE_LENGTH = 128;
/** Longest `uniqueID` (and relayed `x-tidings-message-id`). */
const MAX_ID_LENGTH = 128;
/** Deepest nesting of arrays and objects in a publish, the top object counting as 1. */
const MAX_DEPTH = 64;
/** Replaced by the node's fingerprint when sent: `touched` naming the node itself. */
const OWN_FINGERPRINT = '$FINGERPRINT';

/** A body, described so that large ones are cheap to generate and to shrink. */
type BodySpec =
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'deep'; depth: number; shape: 'array' | 'object'; inPublish: boolean }
  | { kind: 'huge'; bytes: number; asPublish: boolean };

interface RequestCase {
  kind: 'request';
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: BodySpec;
  chunked: boolean;
}

interface RawCase {
  kind: 'raw';
  text: string;
}

type AdminCase = RequestCase | RawCase;

const publishArb: fc.Arbitrary<string> = fc
  .record(
    {
      subscribers: fc.oneof({ weight: 4, arbitrary: phidListArb }, { weight: 1, arbitrary: jsonArb }),
      touched: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 16 }), fc.constant(OWN_FINGERPRINT)), { maxLength: 3 }), jsonArb),
      uniqueID: fc.oneof(
        fc.string({ maxLength: 40 }),
        jsonArb,
        fc.integer({ min: MAX_ID_LENGTH - 2, max: MAX_ID_LENGTH + 2 }).map((n) => 'u'.repeat(n)),
        fc.integer({ min: 0, max: 4_000 }).map((n) => 'u'.repeat(n)),
      ),
      type: fc.oneof(fc.constantFrom('notification', 'message', 'workboards'), jsonArb),
      key: jsonArb,
      extra: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'toString')), jsonArb, { maxKeys: 3 }),
    },
    { requiredKeys: [] },
  )
  .map(({ extra, ...fields }) => {
    const members = Object.entries(fields).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    // Written by hand so that a `__proto__` key is an own member of the JSON text.
    for (const [k, v] of Object.entries(extra ?? {})) members.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    return `{${members.join(',')}}`;
  });

const bodyArb: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 8, arbitrary: publishArb.map((text) => ({ kind: 'text' as const, text })) },
  { weight: 3, arbitrary: jsonArb.map((v) => ({ kind: 'text' as const, text: JSON.stringify(v) })) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }).map((text) => ({ kind: 'text' as const, text })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ kind: 'bytes' as const, bytes })) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deep' as const),
      depth: fc.oneof(fc.integer({ min: MAX_DEPTH - 3, max: MAX_DEPTH + 1 }), fc.integer({ min: 1, max: 30_000 })),
      shape: fc.constantFrom<'array' | 'object'>('array', 'object'),
      inPublish: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('huge' as const),
      bytes: fc.oneof(fc.integer({ min: MAX_BODY_BYTES - 64, max: MAX_BODY_BYTES + 64 }), fc.integer({ min: 1, max: 4 * MAX_BODY_BYTES })),
      asPublish: fc.boolean(),
    }),
  },
);

/** Query values, percent-encoded as a client would, plus broken encodings. */
const queryValueArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', 'default', 'acme', '%', '%zz', '%FF', '%00', '%E2%82', '+', 'a%2Fb', 'a~b'),
  fc.string({ maxLength: 24 }).map(encodeURIComponent),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map(encodeURIComponent),
  fc.integer({ min: MAX_INSTANCE_LENGTH - 2, max: MAX_INSTANCE_LENGTH + 2 }).map((n) => 'i'.repeat(n)),
);

const pathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constant('/') },
  { weight: 4, arbitrary: fc.array(fc.tuple(fc.constantFrom('instance', 'instance', 'instance[]', 'x', ''), queryValueArb), { minLength: 1, maxLength: 3 }).map((q) => `/?${q.map(([k, v]) => `${k}=${v}`).join('&')}`) },
  { weight: 3, arbitrary: fc.constantFrom('/status/', '/status', '/STATUS/', '/healthz', '/readyz', '/metrics', '//', '/index.php', '/?', '/#x', '/status/?instance=', '/./', '/%2F') },
  { weight: 1, arbitrary: fc.webPath().filter((p) => /^[\u0021-\u00ff]*$/.test(p)).map((p) => (p.startsWith('/') ? p : `/${p}`)) },
);

const headerValueArb = fc.string({ maxLength: 40 }).filter((v) => /^[\t\x20-\x7e]*$/.test(v));

const requestArb: fc.Arbitrary<RequestCase> = fc.record({
  kind: fc.constant('request' as const),
  method: fc.oneof(
    { weight: 10, arbitrary: fc.constant('POST') },
    { weight: 3, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND', 'SEARCH') },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,8}$/) },
  ),
  path: pathArb,
  headers: fc
    .record(
      {
        'content-type': fc.oneof(
          fc.constantFrom('application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', ''),
          headerValueArb,
        ),
        'x-tidings-message-id': fc.oneof(
          headerValueArb,
          fc.integer({ min: MAX_ID_LENGTH - 2, max: MAX_ID_LENGTH + 2 }).map((n) => 'm'.repeat(n)),
          fc.integer({ min: 100, max: 4_000 }).map((n) => 'm'.repeat(n)),
        ),
        'content-encoding': fc.constantFrom('gzip', 'deflate', 'identity', 'br'),
        expect: fc.constant('100-continue'),
        accept: headerValueArb,
      },
      { requiredKeys: [] },
    )
    .map((h) => h as Record<string, string>),
  body: fc.option(bodyArb, { nil: undefined, freq: 8 }),
  chunked: fc.boolean(),
});

const rawArb: fc.Arbitrary<RawCase> = fc
  .record({
    line: fc.oneof(
      fc.constantFrom('POST / HTTP/1.1', 'POST / HTTP/1.0', 'GET /status/ HTTP/1.1', 'POST /?instance=x HTTP/1.1', 'POST  / HTTP/1.1', 'POST / HTTP/2.0', 'PRI * HTTP/2.0', 'POST /', 'post / HTTP/1.1', ''),
      fc.string({ maxLength: 24 }),
    ),
    headers: fc.array(
      fc.oneof(
        fc.constantFrom('Host: x', 'Content-Length: 5', 'Content-Length: -1', 'Content-Length: 99999999999', 'Content-Length: 5, 6', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked', 'Content-Type: application/json', 'Connection: close', 'Expect: 100-continue', 'X: \u0000', ' folded: header'),
        fc.string({ maxLength: 24 }),
      ),
      { maxLength: 5 },
    ),
    body: fc.oneof(publishArb, fc.constantFrom('5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', '0\r\n\r\n', ''), fc.string({ maxLength: 32 })),
  })
  .map(({ line, headers, body }) => ({ kind: 'raw' as const, text: `${line}\r\n${headers.join('\r\n')}\r\n\r\n${body}` }));

const caseArb: fc.Arbitrary<AdminCase> = fc.oneof({ weight: 5, arbitrary: requestArb }, { weight: 1, arbitrary: rawArb });

function bodyBytes(body: BodySpec | undefined, fingerprint: string): Buffer {
  if (!body) return Buffer.alloc(0);
  switch (body.kind) {
    case 'text':
      return Buffer.from(body.text.split(OWN_FINGERPRINT).join(fingerprint));
    case 'bytes':
      return Buffer.from(body.bytes);
    case 'deep': {
      const deep = deepJsonText(body.depth, body.shape);
      return Buffer.from(body.inPublish ? `{"subscribers":["PHID-FUZZ-A"],"deep":${deep}}` : deep);
    }
    case 'huge': {
      if (!body.asPublish) return Buffer.alloc(body.bytes, 0x61);
      const head = '{"subscribers":["PHID-FUZZ-A"],"pad":"';
      return Buffer.from(`${head}${'p'.repeat(Math.max(0, body.bytes - head.length - 2))}"}`);
    }
  }
}

/** What the contract says a POST / gets: the status, and the error code of a 4xx. */
function expectedPublish(path: string, body: Buffer): { status: number; error?: string } {
  if (body.length > MAX_BODY_BYTES) return { status: 413, error: 'body_too_large' };
  const q = path.indexOf('?');
  const raw = q === -1 ? undefined : parseQuery(path.slice(q + 1)).instance;
  const instance = typeof raw === 'string' && raw ? raw : Array.isArray(raw) && raw[0] ? raw[0] : 'default';
  if (!VALID_INSTANCE.test(instance)) return { status: 400, error: 'invalid_instance' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 400, error: 'invalid_json' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { status: 400, error: 'not_an_object' };
  const { subscribers, touched, uniqueID } = parsed as { subscribers?: unknown; touched?: unknown; uniqueID?: unknown };
  if (!Array.isArray(subscribers) || !subscribers.every((s) => typeof s === 'string')) return { status: 400, error: 'invalid_subscribers' };
  if (depthOf(parsed) > MAX_DEPTH) return { status: 400, error: 'too_deep' };
  if (typeof uniqueID === 'string' && uniqueID.length > MAX_ID_LENGTH) return { status: 400, error: 'invalid_unique_id' };
  if (touched !== undefined && (!Array.isArray(touched) || !touched.every((t) => typeof t === 'string'))) return { status: 400, error: 'invalid_touched' };
  return { status: 200 };
}

/** Nesting depth of a JSON value, without recursion (the values are nested thousands deep). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * One request, on a connection of its own (as Phorge's publisher makes them); resolves the
 * status and body, or the client-side error (a reset after a 413). Not kept alive: with odd
 * requests (bodies on GET or OPTIONS, answered before they are read) node's HTTP client and
 * server can disagree about where the next request on a kept-alive connection starts, and a
 * case would be blamed for what the one before it left on the connection.
 */
function request(c: RequestCase, adminPort: number, body: Buffer): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...c.headers };
    if (!c.chunked && c.body) headers['content-length'] = body.length;
    const req = http.request({ host: '127.0.0.1', port: adminPort, method: c.method, path: c.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    if (!c.body) return void req.end();
    if (c.chunked) {
      // Several chunks, so the body arrives in pieces.
      const third = Math.ceil(body.length / 3) || 1;
      for (let i = 0; i < body.length; i += third) req.write(body.subarray(i, i + third));
      req.end();
    } else req.end(body);
  });
}

/** Raw bytes over TCP, then a half-close; resolves what came back once the server closes. */
function rawRequest(text: string, adminPort: number): Promise<{ reply: string; closed: boolean }> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = net.connect(adminPort, '127.0.0.1', () => socket.end(text));
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ reply, closed: false });
    }, 3_000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, closed: true });
    });
  });
}

let fuzz: FuzzGateway;
let fingerprint: string;

beforeAll(async () => {
  fuzz = await FuzzGateway.start({
    config: { limits: { maxBodyBytes: MAX_BODY_BYTES }, history: { maxMessages: 2_000 } },
  });
  fingerprint = fuzz.gateway.fingerprint;
}, 60_000);

afterAll(async () => {
  expect(await fuzz?.close()).toBe(0);
});

describe('fuzz - admin port', () => {
  it(
    `${FUZZ_RUNS} cases of generated requests and raw bytes: no 5xx, POST / answered as the contract says, no hang; the process lives and delivers`,
    async () => {
      const counts: Record<string, number> = { requests: 0, raw: 0, published: 0, refused4xx: 0, resetAfter413: 0, resetAfterUnknownMethod: 0, resetAfterUnreadBody: 0, rawUnanswered: 0 };
      const property = fc.asyncProperty(caseArb, async (c) => {
        await fuzz.startCase(c);
        const port = fuzz.gateway.adminPort;
        try {
          if (c.kind === 'raw') {
            counts.raw++;
            const { reply, closed } = await rawRequest(c.text, port);
            if (!closed) throw new Error(`raw request neither answered nor closed within 3 s; got ${JSON.stringify(reply.slice(0, 200))}`);
            const statuses = [...reply.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
            if (statuses.some((s) => s >= 500)) throw new Error(`raw request answered ${statuses.join(',')}: ${JSON.stringify(reply.slice(0, 300))}`);
            if (!statuses.length) counts.rawUnanswered++;
            return;
          }
          counts.requests++;
          const body = bodyBytes(c.body, fingerprint);
          const res = await request(c, port, body);
          const isPublish = c.method === 'POST' && (c.path === '/' || c.path.startsWith('/?'));
          if ('error' in res) {
            // A client still writing a body the server answered without reading (413 past the
            // limit, node's parser's 400 for a method it does not know, any endpoint but the
            // publish, which reads no body), then closed, may see the reset before the answer.
            if (isPublish && body.length > MAX_BODY_BYTES) return void counts.resetAfter413++;
            if (!http.METHODS.includes(c.method) && body.length > 0) return void counts.resetAfterUnknownMethod++;
            if (!isPublish && body.length > 0) return void counts.resetAfterUnreadBody++;
            throw new Error(`request failed: ${res.error}`);
          }
          const isReadyz = c.path === '/readyz' || c.path.startsWith('/readyz?');
          if (res.status >= 500 && !(isReadyz && res.status === 503 && res.text.includes('unready'))) {
            throw new Error(`answered ${res.status}: ${res.text.slice(0, 300)}`);
          }
          if (!isPublish) return;
          const want = expectedPublish(c.path, body);
          let got: { error?: unknown; fingerprint?: unknown } = {};
          try {
            got = JSON.parse(res.text) as typeof got;
          } catch {
            throw new Error(`POST / answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 200)}`);
          }
          if (res.status !== want.status) throw new Error(`POST / answered ${res.status} ${res.text.slice(0, 200)}, the contract says ${want.status} ${want.error ?? ''}`);
          if (want.status === 200 && got.fingerprint !== fingerprint) throw new Error(`receipt without this node's fingerprint: ${res.text.slice(0, 200)}`);
          if (want.error && got.error !== want.error) throw new Error(`POST / refused with ${String(got.error)}, the contract says ${want.error}`);
          counts[want.status === 200 ? 'published' : 'refused4xx']++;
        } finally {
          await fuzz.afterCase();
        }
      });

      const { details } = await runFuzz('admin', fuzz, property, counts);
      expect({ failed: details.failed, message: failureMessage(details, fuzz) }).toEqual({ failed: false, message: 'no failure' });
      expect({ complete: isComplete(details), cases: details.numRuns }).toEqual({ complete: true, cases: details.numRuns });
      await fuzz.probe();
      // Positive controls: both outcomes of a publish were reached, and raw requests were sent.
      expect(counts.published).toBeGreaterThan(details.numRuns / 20);
      expect(counts.refused4xx).toBeGreaterThan(details.numRuns / 20);
      expect(counts.raw).toBeGreaterThan(details.numRuns / 20);
      await fuzz.assertNoInternalErrors();
      expect(fuzz.deaths).toEqual([]);
    },
    fuzzTimeoutMs(5),
  );
});
