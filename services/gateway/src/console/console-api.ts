/**
 * The console's API on the admin port, behind the admin gate like every admin route:
 * - `GET /console/api/overview`: this gateway's snapshot, the other gateways', and what the
 *   page's live tail needs (ConsoleOverview);
 * - `POST /console/api/client-token` `{instance, phids}`: a short-lived HS256 connection
 *   token for the live tail, when client tokens are required and `hmacSecret` is set.
 * Refusals are 4xx/5xx `{"error", "message"}`, each counted in `messages.rejected`.
 */
import type { IncomingMessage } from 'node:http';
import type express from 'express';
import type { Response } from 'express';
import { INSTANCE_RULE, isValidInstance, type ConsoleOverview, type ConsoleTokenResponse, type Logger, type TidingsConfig } from '@tidings/protocol';
import { mintClientToken } from '@tidings/auth';
import type { Counters } from '../counters';

/** Lifetime of a tail token: the client fetches a fresh one at every reconnect. */
export const TAIL_TOKEN_TTL_SECONDS = 300;
/** PHIDs one tail may watch. */
export const MAX_TAIL_PHIDS = 100;
const MAX_PHID_LENGTH = 128;
const MAX_BODY_BYTES = 16 * 1024;

export interface ConsoleApiOptions {
  overview: () => Promise<ConsoleOverview>;
  clientTokens: TidingsConfig['auth']['clientTokens'];
  counters: Counters;
  logger: Logger;
  now?: () => number;
}

function refuse(res: Response, counters: Counters, status: number, error: string, message: string): void {
  counters.reject(`console_${error}`);
  res.status(status).set('Cache-Control', 'no-store').json({ error, message });
}

/** The body as text, at most `limit` bytes; null when it is larger. */
function readSmallBody(req: IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve(null);
      } else chunks.push(chunk);
    });
    req.once('end', () => resolve(size > limit ? null : Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/** What is wrong with a token request (null: nothing). Exact PHIDs only: the tail subscribes to PHIDs, never to a prefix. */
export function tokenRequestProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object {"instance", "phids"}';
  const { instance, phids } = body as { instance?: unknown; phids?: unknown };
  if (typeof instance !== 'string' || !isValidInstance(instance)) return `instance: ${INSTANCE_RULE}`;
  if (!Array.isArray(phids) || phids.length === 0 || phids.length > MAX_TAIL_PHIDS) return `phids: a list of 1 to ${MAX_TAIL_PHIDS} PHIDs`;
  for (const phid of phids) {
    if (typeof phid !== 'string' || phid === '' || phid.length > MAX_PHID_LENGTH || /\s/.test(phid)) {
      return `phids: each a string of 1 to ${MAX_PHID_LENGTH} characters without spaces`;
    }
    if (phid.endsWith('*')) return 'phids: exact PHIDs only (no prefixes): the tail subscribes to PHIDs';
  }
  return null;
}

export function consoleApiRoutes(options: ConsoleApiOptions): (app: express.Express) => void {
  const { counters, logger, clientTokens } = options;
  const now = options.now ?? Date.now;
  return (app) => {
    app.get('/console/api/overview', async (_req, res) => {
      const overview = await options.overview();
      res.set('Cache-Control', 'no-store').json(overview);
    });

    app.post('/console/api/client-token', async (req, res) => {
      const text = await readSmallBody(req, MAX_BODY_BYTES);
      if (text === null) return refuse(res, counters, 413, 'body_too_large', `the body exceeds ${MAX_BODY_BYTES} bytes`);
      if (!clientTokens.hmacSecret) {
        return refuse(
          res,
          counters,
          501,
          'cannot_mint',
          'this gateway has no auth.clientTokens.hmacSecret, so it cannot sign connection tokens; paste a token your backend minted',
        );
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return refuse(res, counters, 400, 'invalid_json', 'the body is not JSON');
      }
      const problem = tokenRequestProblem(body);
      if (problem) return refuse(res, counters, 400, 'invalid_token_request', problem);
      const { instance, phids } = body as { instance: string; phids: string[] };
      const issuedAt = now();
      const token = await mintClientToken({
        secret: clientTokens.hmacSecret,
        phids,
        ttlSeconds: TAIL_TOKEN_TTL_SECONDS,
        instance,
        sub: 'tidings-console',
        issuer: clientTokens.issuer || undefined,
        audience: clientTokens.audience || undefined,
        now: issuedAt,
      });
      // Who asked is the admin gate's business; what was granted is worth a line. Never the token.
      logger.info({ instance, phids: phids.length, ttlSeconds: TAIL_TOKEN_TTL_SECONDS }, 'console: minted a connection token for the live tail');
      const answer: ConsoleTokenResponse = { token, expiresAt: Math.floor(issuedAt / 1000) * 1000 + TAIL_TOKEN_TTL_SECONDS * 1000 };
      res.set('Cache-Control', 'no-store').json(answer);
    });
  };
}
