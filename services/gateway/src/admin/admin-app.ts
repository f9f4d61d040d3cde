/**
 * The admin server (Aphlict's, plus health and metrics): POST / publishes, GET /status/
 * reports, any other method on / is 405, anything else 404. Every client mistake gets a
 * 4xx with `{"error": CODE, "message": TEXT}`; never a 5xx.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import express, { type NextFunction, type Request, type Response } from 'express';
import { INSTANCE_RULE, instanceFromQuery, isValidInstance, parsePublishBody, MAX_MESSAGE_ID_LENGTH, MESSAGE_ID_HEADER, type Logger } from '@tidings/protocol';
import { HistoryUnavailableError, InstanceLimitError, type TidingsNode } from '../node';
import type { StatusReporter } from './status';
import type { AuthCollaborators } from '../wiring-auth';

export interface AdminAppOptions {
  node: TidingsNode;
  status: StatusReporter;
  logger: Logger;
  maxBodyBytes: number;
  /** The admin gate (auth.adminTokens, auth.adminAllow), client addresses and the publish limiter. */
  auth: AuthCollaborators;
  /** Extra routes (health, metrics) mounted before the 404. */
  extraRoutes?: (app: express.Express) => void;
  /** Answers what needs no token, in front of the admin gate (the console's static page); true when it answered. */
  openRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean;
}


/** The admin server's request listener (express, with publishing served in front of it). */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => void;

function sendError(res: ServerResponse, status: number, error: string, message: string): void {
  const body = JSON.stringify({ error, message });
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** A request body over the limit: answered 413 as soon as that is known. */
class BodyTooLargeError extends Error {}

/**
 * Reads the body as UTF-8 text, whatever its Content-Type (Aphlict reads any). A body over
 * `limit` bytes fails as soon as that is known (from Content-Length, or once the bytes read
 * pass it) without reading the rest.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > limit) return reject(new BodyTooLargeError());
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        return reject(new BodyTooLargeError());
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks, size).toString('utf8')));
    req.once('error', reject);
  });
}

/** The path of a request URL without its query, as Aphlict's url.parse() gives it. */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function createAdminApp(options: AdminAppOptions): AdminHandler {
  const { node, logger } = options;
  const receipt = JSON.stringify({ fingerprint: node.fingerprint });
  // With a Content-Length, node:http sends head and body as one buffer in one system call;
  // without one it chunks them into a five-part writev(2) (as Aphlict does; any HTTP client
  // reads both).
  const receiptHeaders = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(receipt) };
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('strict routing', true);
  // Aphlict compares the path exactly: /STATUS/ is a 404 there.
  app.set('case sensitive routing', true);
  app.set('query parser', 'simple');

  /**
   * POST / is the hot path and is served straight from node:http, in front of express:
   * express's per-request setup (prototype swaps, router, query parsing) cost about as much
   * CPU as the rest of a publish (bench: ~130 us a request). Everything else goes to express.
   */
  const servePublish = async (req: IncomingMessage, res: ServerResponse, url: string): Promise<void> => {
    const q = url.indexOf('?');
    const instance = instanceFromQuery(q === -1 ? undefined : parseQuery(url.slice(q + 1)).instance);
    let text: string;
    try {
      text = await readBody(req, options.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        node.counters.reject('body_too_large');
        logger.warn({ remote: req.socket.remoteAddress }, 'publish refused: body too large');
        res.setHeader('Connection', 'close');
        return sendError(res, 413, 'body_too_large', `the body exceeds ${options.maxBodyBytes} bytes`);
      }
      node.counters.reject('request.aborted');
      if (!res.headersSent) sendError(res, 400, 'bad_request', (err as Error).message);
      return;
    }
    if (!isValidInstance(instance)) {
      node.counters.reject('invalid_instance');
      return sendError(res, 400, 'invalid_instance', INSTANCE_RULE);
    }
    const check = parsePublishBody(text);
    if (!check.ok) {
      node.counters.reject(check.code);
      logger.warn({ remote: req.socket.remoteAddress, code: check.code, instance }, `publish refused: ${check.message}`);
      return sendError(res, 400, check.code, check.message);
    }
    const header = req.headers[MESSAGE_ID_HEADER];
    const assignedId = typeof header === 'string' && header && header.length <= MAX_MESSAGE_ID_LENGTH ? header : undefined;
    try {
      const result = await node.publish(instance, check.message, assignedId);
      logger.trace({ instance, ...result }, 'publish');
    } catch (err) {
      if (err instanceof InstanceLimitError) {
        node.counters.reject('instance_limit');
        logger.warn({ instance: instance.slice(0, 128), err: err.message }, 'publish refused: too many instances');
        return sendError(res, 503, 'instance_limit', err.message);
      }
      if (err instanceof HistoryUnavailableError) {
        logger.warn({ instance, err: err.message }, 'publish not acknowledged: history unavailable');
        return sendError(res, 503, 'history_unavailable', 'the message was delivered locally but could not be stored in shared history');
      }
      logger.error({ err: (err as Error).message, stack: (err as Error).stack }, 'publish failed');
      return sendError(res, 500, 'internal', 'internal error');
    }
    res.writeHead(200, receiptHeaders);
    res.end(receipt);
  };

  app.all('/', (_req, res) => {
    res.set('Allow', 'POST');
    sendError(res, 405, 'method_not_allowed', 'publish with POST /');
  });

  app.all('/status/', async (req, res) => {
    const instance = instanceFromQuery(req.query.instance);
    if (!isValidInstance(instance)) {
      node.counters.reject('invalid_instance');
      return sendError(res, 400, 'invalid_instance', INSTANCE_RULE);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(await options.status.report(instance)));
  });

  options.extraRoutes?.(app);

  app.use((_req, res) => sendError(res, 404, 'not_found', 'no such endpoint'));

  // Anything express itself throws is ours, not the caller's.
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err: err.message, stack: err.stack }, 'admin request failed');
    if (!res.headersSent) sendError(res, 500, 'internal', 'internal error');
  });

  const { adminAuth, clientAddress, publishLimiter } = options.auth;
  return (req, res) => {
    if (options.openRoutes?.(req, res)) return;
    const source = clientAddress.resolve(req.socket.remoteAddress, req.headers['x-forwarded-for']);
    // Decided from the request line and headers: a refused request's body is never read.
    const decision = adminAuth.check({ method: req.method, url: req.url, headers: req.headers, remoteAddress: source });
    if (!decision.ok) {
      node.counters.reject('unauthorized');
      // Neither the URL nor the header: either may hold a (wrong) token.
      logger.warn({ remote: source, method: req.method, reason: decision.reason }, 'admin request refused: no valid token');
      res.setHeader('WWW-Authenticate', decision.headers['WWW-Authenticate']);
      // Closing the connection instead of reading what is left of the body.
      res.setHeader('Connection', 'close');
      return sendError(res, 401, decision.error, decision.message);
    }
    // Routed without the path token (/TOKEN/status/ is /status/).
    const url = decision.url;
    req.url = url;
    if (req.method === 'POST' && pathOf(url) === '/') {
      if (publishLimiter) {
        const key = decision.tokenIndex !== undefined ? `token:${decision.tokenIndex}` : `address:${source ?? 'unknown'}`;
        const rate = publishLimiter.take(key);
        if (!rate.ok) {
          node.counters.reject('rate_limited');
          logger.warn({ remote: source, key: key.startsWith('token:') ? key : undefined }, 'publish refused: over limits.maxPublishesPerSecond');
          res.setHeader('Retry-After', String(rate.retryAfterSeconds));
          res.setHeader('Connection', 'close');
          return sendError(res, 429, 'rate_limited', `over limits.maxPublishesPerSecond; retry after ${rate.retryAfterSeconds} s`);
        }
      }
      servePublish(req, res, url).catch((err: Error) => {
        node.counters.internalError('admin');
        logger.error({ err: err.message, stack: err.stack }, 'publish handling failed');
        if (!res.headersSent) sendError(res, 500, 'internal', 'internal error');
        else res.destroy();
      });
    } else app(req, res);
  };
}
