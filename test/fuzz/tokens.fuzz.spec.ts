/**
 * Fuzz: connection tokens against one long-lived gateway process that requires them
 * (auth.clientTokens.mode "required", an HS256 secret and an ES256 public key, issuer and
 * audience set). Each case offers one generated token on one transport: `?token=` on a raw
 * upgrade, `Authorization: Bearer` on it, or Socket.IO's `auth.token` (there also non-string
 * tokens). The tokens: random text and base64url parts, JWTs with arbitrary headers and
 * claims, `alg: none`, other algorithms, expired or not yet valid, signed with a wrong key,
 * tampered, for another instance, issuer or audience, with unusable `phids`, oversized (some
 * of them validly signed), and valid ones as the positive control.
 *
 * Invariants, per case: a valid token opens the connection, which then may subscribe only to
 * what its token lists (a raw socket answers its ping; Socket.IO refuses the other PHID in
 * its ack); every other token is refused before the connection opens (raw: 401 with
 * `WWW-Authenticate: Bearer`, or Node's own 431 when the request's head is over its limit;
 * Socket.IO: connect_error "unauthorized"), with the reason the token calls for where it
 * calls for one, in the log line and the counter; no log line repeats the token; the process
 * lives and logs no error. At the end, messages.rejected holds exactly the refusals seen,
 * reason by reason, and no connection is left open but the probe's.
 */
import { createHmac, generateKeyPairSync, sign as signWith, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import fc from 'fast-check';
import { mintClientToken } from '@tidings/auth';
import { sleep } from '@tidings/testing';
import { failureMessage, FUZZ_RUNS, FuzzGateway, fuzzTimeoutMs, isComplete, runFuzz } from './harness';

const SECRET = 'fuzz-client-token-secret-0123456789abcdef';
const OTHER_SECRET = 'fuzz-another-secret-0123456789abcdef-xyz';
const ISSUER = 'phorge';
const AUDIENCE = 'tidings';
const ALLOWED = 'PHID-USER-fuzz';
const FORBIDDEN = 'PHID-USER-someone-else';
/** The verifier's default bound on a token (DEFAULT_MAX_TOKEN_BYTES). */
const MAX_TOKEN_BYTES = 8_192;

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** Text with lone surrogates replaced (U+FFFD), as any client's UTF-8 encoder sends it. */
const wellFormed = (text: string) => Buffer.from(text, 'utf8').toString('utf8');
const b64 = (data: Uint8Array | string) => Buffer.from(data).toString('base64url');
const json64 = (value: unknown) => b64(JSON.stringify(value));

/** A compact JWS over `header.claims`, signed with node:crypto (synchronous, for generators). */
function signed(header: Record<string, unknown>, claims: unknown, key: { hmac: string } | { ec: KeyObject } | { rsa: KeyObject }): string {
  const input = `${json64(header)}.${json64(claims)}`;
  let signature: Buffer;
  if ('hmac' in key) signature = createHmac('sha256', key.hmac).update(input).digest();
  else if ('ec' in key) signature = signWith('sha256', Buffer.from(input), { key: key.ec, dsaEncoding: 'ieee-p1363' });
  else signature = signWith('sha256', Buffer.from(input), key.rsa);
  return `${input}.${b64(signature)}`;
}

const nowS = () => Math.floor(Date.now() / 1_000);
/** Claims a valid token carries; the generators change one thing at a time. */
const goodClaims = (instance: string, extra: Record<string, unknown> = {}) => ({
  phids: [ALLOWED, 'PHID-PROJ-*'],
  iss: ISSUER,
  aud: AUDIENCE,
  instance,
  iat: nowS(),
  exp: nowS() + 600,
  ...extra,
});

type Signer = 'HS256' | 'ES256';
const signerArb = fc.constantFrom<Signer>('HS256', 'ES256');
const signGood = (alg: Signer, claims: unknown) => (alg === 'HS256' ? signed({ alg, typ: 'JWT' }, claims, { hmac: SECRET }) : signed({ alg }, claims, { ec: ec.privateKey }));

type Transport = 'query' | 'header' | 'socketio';
/** What a case offers. `reason`: the refusal the token calls for (undefined: any refusal; `accept`: none). */
interface TokenCase {
  kind: string;
  /** What the client sends; not always a string on Socket.IO. */
  token: unknown;
  transport: Transport;
  /** The instance the connection asks for. */
  instance: 'default' | 'acme';
  reason?: string;
}

/** A generated token for an instance: its kind, text and the reason it must be refused with. */
type Made = { kind: string; token: unknown; reason?: string; socketIoOnly?: boolean };

/** Algorithm names the gateway does not take ('' is no algorithm: `malformed`, so it is only among the junk). */
const algorithmArb = fc.constantFrom('none', 'None', 'NONE', 'HS384', 'HS512', 'RS256', 'RS512', 'PS256', 'ES384', 'ES512', 'EdDSA', 'A128KW', 'dir');
const junkHeader = fc.record(
  { alg: fc.oneof(algorithmArb, fc.constantFrom('', 'HS256', 'ES256'), fc.jsonValue()), typ: fc.constantFrom('JWT', 'at+jwt'), kid: fc.string(), crit: fc.array(fc.string(), { maxLength: 2 }) },
  { requiredKeys: [] },
);
const junkClaims = fc.record(
  {
    exp: fc.oneof(fc.integer(), fc.jsonValue()),
    nbf: fc.oneof(fc.integer(), fc.jsonValue()),
    iss: fc.oneof(fc.constant(ISSUER), fc.jsonValue()),
    aud: fc.oneof(fc.constant(AUDIENCE), fc.jsonValue()),
    instance: fc.oneof(fc.constant('default'), fc.jsonValue()),
    phids: fc.oneof(fc.array(fc.string()), fc.jsonValue(), fc.constant(['*'])),
  },
  { requiredKeys: [] },
);

function madeFor(instance: string): fc.Arbitrary<Made> {
  return fc.oneof(
    // Text from any alphabet, and tokens that look almost like JWTs.
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }).map((token) => ({ kind: 'random', token: wellFormed(token) })) },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.uint8Array({ maxLength: 300 }).map(b64), { minLength: 1, maxLength: 5 })
        .map((parts) => ({ kind: 'parts', token: parts.join('.') })),
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(junkHeader, junkClaims, fc.oneof(fc.constant(''), fc.uint8Array({ minLength: 1, maxLength: 300 }).map(b64)))
        .map(([h, c, sig]) => ({ kind: 'jwt-junk', token: `${json64(h)}.${json64(c)}.${sig}` })),
    },
    // alg "none" (any spelling), asking for everything, signature empty or not.
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('none', 'None', 'NONE', 'nOnE'), fc.constantFrom('', 'AAAA', b64('x')))
        .map(([alg, sig]) => ({
          kind: 'alg-none',
          token: `${json64({ alg, typ: 'JWT' })}.${json64(goodClaims(instance, { phids: ['*'] }))}.${sig}`,
          reason: 'token_wrong_algorithm',
        })),
    },
    // A real token's payload under a header naming an algorithm the gateway does not take.
    {
      weight: 2,
      arbitrary: fc.tuple(algorithmArb, signerArb).map(([alg, signer]) => {
        const [, payload, signature] = signGood(signer, goodClaims(instance)).split('.');
        return { kind: 'other-algorithm', token: `${json64({ alg })}.${payload}.${signature}`, reason: 'token_wrong_algorithm' };
      }),
    },
    // RS256 with a key of its own: the gateway holds an EC key, RS256 is not among its algorithms.
    { weight: 1, arbitrary: fc.constant(0).map(() => ({ kind: 'rs256', token: signed({ alg: 'RS256' }, goodClaims(instance), { rsa: rsa.privateKey }), reason: 'token_wrong_algorithm' })) },
    {
      weight: 2,
      arbitrary: fc.tuple(signerArb, fc.integer({ min: 1, max: 10_000_000 })).map(([signer, ago]) => ({
        kind: 'expired',
        token: signGood(signer, goodClaims(instance, { iat: nowS() - ago - 600, exp: nowS() - ago })),
        reason: 'token_expired',
      })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(signerArb, fc.integer({ min: 60, max: 10_000_000 })).map(([signer, ahead]) => ({
        kind: 'not-yet-valid',
        token: signGood(signer, goodClaims(instance, { nbf: nowS() + ahead })),
        reason: 'token_not_yet_valid',
      })),
    },
    {
      weight: 2,
      arbitrary: signerArb.map((signer) => ({
        kind: 'wrong-key',
        token:
          signer === 'HS256'
            ? signed({ alg: 'HS256' }, goodClaims(instance), { hmac: OTHER_SECRET })
            : signed({ alg: 'ES256' }, goodClaims(instance), { ec: otherEc.privateKey }),
        reason: 'token_bad_signature',
      })),
    },
    // A real token whose claims were widened to every PHID (or changed at random), signature kept.
    {
      weight: 2,
      arbitrary: fc.tuple(signerArb, fc.option(junkClaims, { nil: undefined })).map(([signer, junk]) => {
        const [header, , signature] = signGood(signer, goodClaims(instance)).split('.');
        return { kind: 'tampered', token: `${header}.${json64({ ...goodClaims(instance), ...junk, phids: ['*'] })}.${signature}`, reason: 'token_bad_signature' };
      }),
    },
    // A real token with a random signature, of about the right size or not.
    {
      weight: 1,
      arbitrary: fc.tuple(signerArb, fc.uint8Array({ minLength: 0, maxLength: 128 })).map(([signer, sig]) => {
        const [header, payload] = signGood(signer, goodClaims(instance)).split('.');
        return { kind: 'random-signature', token: `${header}.${payload}.${b64(sig)}`, reason: 'token_bad_signature' };
      }),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(signerArb, fc.constantFrom('other', 'default', 'acme', 'ACME', 'acme ')).filter(([, bound]) => bound !== instance).map(([signer, bound]) => ({
        kind: 'wrong-instance',
        token: signGood(signer, goodClaims(instance, { instance: bound })),
        reason: 'token_wrong_instance',
      })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(signerArb, fc.oneof(fc.string(), fc.jsonValue())).filter(([, iss]) => iss !== ISSUER).map(([signer, iss]) => ({
        kind: 'wrong-issuer',
        token: signGood(signer, goodClaims(instance, { iss })),
        reason: 'token_wrong_issuer',
      })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(signerArb, fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }))).filter(([, aud]) => aud !== AUDIENCE && !(Array.isArray(aud) && aud.includes(AUDIENCE))).map(([signer, aud]) => ({
        kind: 'wrong-audience',
        token: signGood(signer, goodClaims(instance, { aud })),
        reason: 'token_wrong_audience',
      })),
    },
    // Validly signed, but `phids` is not a list of PHID entries (an empty list is one: it allows nothing).
    {
      weight: 1,
      arbitrary: fc
        .tuple(signerArb, fc.oneof(fc.constant(undefined), fc.constant(['']), fc.constant(['PHID-*-x']), fc.constant([42]), fc.constant('*'), fc.dictionary(fc.string(), fc.string())))
        .map(([signer, phids]) => ({ kind: 'bad-phids', token: signGood(signer, goodClaims(instance, { phids })), reason: 'token_invalid_claims' })),
    },
    // Oversized: base64url text, or a validly signed token with a huge PHID list.
    {
      weight: 1,
      arbitrary: fc.integer({ min: MAX_TOKEN_BYTES + 1, max: 40_000 }).map((n) => ({ kind: 'oversized', token: 'e'.repeat(n), reason: 'token_too_large' })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(signerArb, fc.integer({ min: 400, max: 1_500 })).map(([signer, n]) => ({
        kind: 'oversized-signed',
        token: signGood(signer, goodClaims(instance, { phids: Array.from({ length: n }, (_, i) => `PHID-USER-${String(i).padStart(12, '0')}`) })),
        reason: 'token_too_large',
      })),
    },
    // Socket.IO's auth.token that is not a string, or empty: the same as none at all.
    { weight: 1, arbitrary: fc.oneof(fc.constant(''), fc.constant(null), fc.jsonValue().filter((v) => typeof v !== 'string')).map((token) => ({ kind: 'not-a-string', token, reason: 'token_missing', socketIoOnly: true })) },
    // The positive control.
    { weight: 2, arbitrary: signerArb.map((signer) => ({ kind: 'valid', token: signGood(signer, goodClaims(instance)), reason: 'accept' })) },
  );
}

const caseArb: fc.Arbitrary<TokenCase> = fc
  .tuple(fc.constantFrom<'default' | 'acme'>('default', 'acme'), fc.constantFrom<Transport>('query', 'header', 'socketio'))
  .chain(([instance, transport]) =>
    madeFor(instance).map((made): TokenCase => {
      // A header carries only visible ASCII without spaces as one bearer token; other text goes in the query.
      const headerSafe = typeof made.token === 'string' && /^[\x21-\x7e]+$/.test(made.token);
      const t: Transport = made.socketIoOnly ? 'socketio' : transport === 'header' && !headerSafe ? 'query' : transport;
      return { kind: made.kind, token: made.token, transport: t, instance, reason: made.reason };
    }),
  );

/** Percent-encodes every byte that is not unreserved, so any text survives the query intact. */
const queryValue = (text: string) => encodeURIComponent(text);

interface RawOutcome {
  status: number;
  wwwAuthenticate?: string;
  ws?: WebSocket;
}

/** Offers a token on a raw upgrade: the refusal's status, or 101 with the open socket. */
function rawUpgrade(clientUrl: string, c: TokenCase): Promise<RawOutcome> {
  const path = c.instance === 'default' ? '/' : `/~${c.instance}/`;
  const token = c.token as string;
  const url = c.transport === 'query' ? `${clientUrl}${path}?token=${queryValue(token)}` : `${clientUrl}${path}`;
  const headers = c.transport === 'header' ? { Authorization: `Bearer ${token}` } : {};
  return new Promise((resolve, reject) => {
    // Node's default bound on a request's head is 16 KiB; ws's client sends any size.
    const ws = new WebSocket(url, { headers, maxPayload: 1 << 20 });
    const timer = setTimeout(() => reject(new Error('the upgrade got no answer in 5 s')), 5_000);
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0, wwwAuthenticate: res.headers['www-authenticate'] });
      res.resume();
      ws.on('error', () => undefined);
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ status: 101, ws });
    });
    ws.once('error', (err) => {
      if (err.message.includes('Unexpected server response')) return;
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Waits for the socket's answer to a ping (the connection serves). */
function pong(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer to the ping in 5 s')), 5_000);
    ws.once('pong', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`closed with ${code} instead of answering the ping`));
    });
    ws.ping();
  });
}

interface IoOutcome {
  connected: boolean;
  message?: string;
  reason?: string;
  ack?: unknown;
}

/** Offers a token in a Socket.IO handshake; connected, it subscribes to an allowed and a forbidden PHID. */
async function socketIoHandshake(clientUrl: string, c: TokenCase): Promise<IoOutcome> {
  const socket = io(clientUrl.replace(/^ws/, 'http'), {
    path: '/socket.io/',
    transports: ['websocket'],
    auth: c.instance === 'default' ? { token: c.token } : { token: c.token, instance: c.instance },
    reconnection: false,
    forceNew: true,
    timeout: 5_000,
  });
  try {
    const connected = await new Promise<IoOutcome>((resolve) => {
      socket.once('connect', () => resolve({ connected: true }));
      socket.once('connect_error', (err: Error & { data?: { reason?: string } }) => resolve({ connected: false, message: err.message, reason: err.data?.reason }));
    });
    if (!connected.connected) return connected;
    const ack = await socket.timeout(5_000).emitWithAck('subscribe', [ALLOWED, FORBIDDEN]);
    return { connected: true, ack };
  } finally {
    socket.close();
  }
}

let fuzz: FuzzGateway;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-fuzz-key-'));
  const publicKeyFile = join(dir, 'public.pem');
  writeFileSync(publicKeyFile, ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const probeToken = await mintClientToken({ secret: SECRET, phids: ['PHID-PROBE-*'], ttlSeconds: 86_400, issuer: ISSUER, audience: AUDIENCE });
  fuzz = await FuzzGateway.start({
    config: { auth: { clientTokens: { mode: 'required', hmacSecret: SECRET, publicKeyFile, issuer: ISSUER, audience: AUDIENCE } } },
    probeToken,
  });
}, 60_000);

afterAll(async () => {
  expect(await fuzz?.close()).toBe(0);
});

/** A refusal's log line (raw: "connection refused: ...", Socket.IO: "socket.io connection refused: ..."). */
const isRefusalLog = (record: Record<string, unknown>) => typeof record.msg === 'string' && /^(socket\.io )?connection refused: connection token refused/.test(record.msg);

describe('fuzz - connection tokens', () => {
  it(
    `${FUZZ_RUNS} cases of generated tokens on both transports: only valid ones open a connection, every other one is refused with its reason, no token is logged`,
    async () => {
      const counts: Record<string, number> = { accepted: 0, refused: 0, status431: 0 };
      /** Refusals seen per counter label (token_<reason>, socketio_token_<reason>), to compare with messages.rejected at the end. */
      const refusals: Record<string, number> = {};
      /** messages.rejected: node-wide, Socket.IO's refusals as socketio_<reason>. */
      const rejectedNow = async () => ((await fuzz.status())['messages.rejected'] ?? {}) as Record<string, number>;
      const rejectedBefore = await rejectedNow();
      let logCursor = fuzz.gateway.logs.length;
      let gateway = fuzz.gateway;

      const property = fc.asyncProperty(caseArb, async (c) => {
        try {
          await runCase(c);
        } finally {
          // A failed case's log lines must not answer for the next case (fast-check's shrinking runs more).
          logCursor = gateway.logs.length;
        }
        await fuzz.afterCase();
      });

      async function runCase(c: TokenCase): Promise<void> {
        await fuzz.startCase(c);
        if (fuzz.gateway !== gateway) {
          // A respawned process: its log starts afresh.
          gateway = fuzz.gateway;
          logCursor = 0;
        }
        counts[`${c.transport}:${c.kind}`] = (counts[`${c.transport}:${c.kind}`] ?? 0) + 1;
        let refusedWith: string | undefined;
        if (c.transport === 'socketio') {
          const outcome = await socketIoHandshake(fuzz.clientUrl, c);
          if (c.reason === 'accept') {
            if (!outcome.connected) throw new Error(`a valid token was refused: ${outcome.message} (${outcome.reason})`);
            const ack = outcome.ack as { refused?: unknown; added?: unknown };
            if (JSON.stringify(ack.refused) !== JSON.stringify([FORBIDDEN]) || ack.added !== 1) throw new Error(`subscribe with a token, ack: ${JSON.stringify(ack)}`);
            counts.accepted++;
          } else {
            if (outcome.connected) throw new Error('a bad token opened a Socket.IO connection');
            if (outcome.message !== 'unauthorized') throw new Error(`connect_error "${outcome.message}", not "unauthorized"`);
            refusedWith = `token_${outcome.reason}`;
          }
        } else {
          const outcome = await rawUpgrade(fuzz.clientUrl, c);
          if (c.reason === 'accept') {
            if (!outcome.ws) throw new Error(`a valid token was refused with ${outcome.status}`);
            try {
              outcome.ws.send(JSON.stringify({ command: 'subscribe', data: [ALLOWED, FORBIDDEN] }));
              await pong(outcome.ws);
            } finally {
              outcome.ws.terminate();
            }
            counts.accepted++;
          } else if (outcome.status === 431) {
            // Node's HTTP parser refused the request's head (over 16 KiB) before the gateway saw it.
            if ((c.token as string).length < 8_000) throw new Error(`431 for a token of ${(c.token as string).length} characters`);
            counts.status431++;
          } else {
            outcome.ws?.terminate();
            if (outcome.status !== 401) throw new Error(`a bad token was answered ${outcome.status}, not 401`);
            if (outcome.wwwAuthenticate !== 'Bearer') throw new Error(`401 without WWW-Authenticate: Bearer (${outcome.wwwAuthenticate})`);
            refusedWith = 'refused';
          }
        }

        // The refusal's log line: its reason (raw sockets say it only there and in the counter).
        if (refusedWith !== undefined) {
          const deadline = Date.now() + 2_000;
          let record: Record<string, unknown> | undefined;
          for (;;) {
            record = gateway.logs.slice(logCursor).find(isRefusalLog);
            if (record || Date.now() > deadline) break;
            await sleep(2);
          }
          if (!record) throw new Error('no log line for the refusal');
          const reason = String(record.reason);
          if (refusedWith !== 'refused' && reason !== refusedWith) throw new Error(`Socket.IO said ${refusedWith}, the log ${reason}`);
          if (!reason.startsWith('token_')) throw new Error(`refused for ${reason}, not a token reason`);
          if (c.reason !== undefined && reason !== c.reason) throw new Error(`refused as ${reason}; a ${c.kind} token calls for ${c.reason}`);
          const label = c.transport === 'socketio' ? `socketio_${reason}` : reason;
          refusals[label] = (refusals[label] ?? 0) + 1;
          counts.refused++;
        }
        // No log line repeats the token (nor a long piece of it).
        if (typeof c.token === 'string' && c.token.length >= 16) {
          const text = JSON.stringify(gateway.logs.slice(logCursor));
          const piece = c.token.length > 64 ? c.token.slice(0, 64) : c.token;
          if (text.includes(piece) || text.includes(queryValue(piece))) throw new Error('a log line repeats the token');
        }
      }

      const { details } = await runFuzz('tokens', fuzz, property, counts);
      expect({ failed: details.failed, message: failureMessage(details, fuzz) }).toEqual({ failed: false, message: 'no failure' });
      expect({ complete: isComplete(details), cases: details.numRuns }).toEqual({ complete: true, cases: details.numRuns });

      // The counters hold exactly the refusals seen, reason by reason (one process throughout).
      expect(fuzz.deaths).toEqual([]);
      const rejected = await rejectedNow();
      const counted: Record<string, number> = {};
      for (const [label, n] of Object.entries(rejected)) {
        if (/^(socketio_)?token_/.test(label) && n - (rejectedBefore[label] ?? 0) > 0) counted[label] = n - (rejectedBefore[label] ?? 0);
      }
      expect(counted).toEqual(refusals);
      // Positive controls: the generators reach valid tokens and the interesting refusals.
      expect(counts.accepted).toBeGreaterThan(0);
      if (details.numRuns >= 2_000) {
        for (const reason of ['malformed', 'too_large', 'wrong_algorithm', 'bad_signature', 'expired', 'not_yet_valid', 'wrong_instance', 'wrong_issuer', 'wrong_audience', 'invalid_claims', 'missing']) {
          expect({ reason, seen: (refusals[`token_${reason}`] ?? 0) + (refusals[`socketio_token_${reason}`] ?? 0) > 0 }).toEqual({ reason, seen: true });
        }
      }
      // Nothing left open but the probe.
      await fuzz.expectConnections(1, 0);
      await fuzz.probe();
    },
    fuzzTimeoutMs(30),
  );
});
