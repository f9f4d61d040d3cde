/**
 * The admin server (Aphlict's, plus health and metrics): POST / publishes, GET /status/
 * reports, any other method on / is 405, anything else 404. Every client mistake gets a
 * 4xx with `{"error": CODE, "message": TEXT}`; never a 5xx.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import express, { type NextFunction, type Request, type Response } from 'express';
import { instanceFromQuery, parsePublishBody, MESSAGE_ID_HEADER, type Logger } from '@tidings/protocol';
import { HistoryUnavailableError, type TidingsNode } from '../node';
import type { StatusReporter } from './status';

export interface AdminAppOptions {
  node: TidingsNode;
  status: StatusReporter;
  logger: Logger;
  maxBodyBytes: number;
  /** Extra routes (health, metrics) mounted before the 404. */
  extraRoutes?: (app: express.Express) => void;
}

const MAX_INSTANCE_LENGTH = 256;
const MAX_ID_LENGTH = 128;

/** The admin server's request listener (express, with publishing served in front of it). */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => void;

function sendError(res: ServerResponse, status: number, error: string, message: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ error, message }));
}

/**
 * Reads the body as UTF-8 text, whatever its Content-Type (Aphlict reads any). A body over
 * `limit` bytes fails with 413 as soon as that is known (from Content-Length, or once the
 * bytes read pass it) without reading the rest: body-parser drains the whole request first.
 */
function bodyReader(limit: number) {
  const tooLarge = () => Object.assign(new Error('request entity too large'), { type: 'entity.too.large', status: 413 });
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (Number(req.headers['content-length']) > limit) return next(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) {
        req.pause();
        return next(err);
      }
      req.body = Buffer.concat(chunks, size).toString('utf8');
      next();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(tooLarge());
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (err) => finish(Object.assign(err, { type: 'request.aborted', status: 400 })));
  };
}

export function createAdminApp(options: AdminAppOptions): AdminHandler {
  const { node, logger } = options;
  const receipt = JSON.stringify({ fingerprint: node.fingerprint });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('strict routing', true);
  // Aphlict compares the path exactly: /STATUS/ is a 404 there.
  app.set('case sensitive routing', true);
  app.set('query parser', 'simple');

  const readBody = bodyReader(options.maxBodyBytes);

  /** Publishes one body; shared by the fast path below and the express route. */
  const publish = async (req: IncomingMessage, res: ServerResponse, instance: string, text: string): Promise<void> => {
    if (instance.length > MAX_INSTANCE_LENGTH) {
      node.counters.reject('invalid_instance');
      return sendError(res, 400, 'invalid_instance', `instance names are at most ${MAX_INSTANCE_LENGTH} characters`);
    }
    const check = parsePublishBody(text);
    if (!check.ok) {
      node.counters.reject(check.code);
      logger.warn({ remote: req.socket.remoteAddress, code: check.code, instance }, `publish refused: ${check.message}`);
      return sendError(res, 400, check.code, check.message);
    }
    const header = req.headers[MESSAGE_ID_HEADER];
    const assignedId = typeof header === 'string' && header && header.length <= MAX_ID_LENGTH ? header : undefined;
    try {
      const result = await node.publish(instance, check.message, assignedId);
      logger.trace({ instance, ...result }, 'publish');
    } catch (err) {
      if (err instanceof HistoryUnavailableError) {
        logger.warn({ instance, err: err.message }, 'publish not acknowledged: history unavailable');
        return sendError(res, 503, 'history_unavailable', 'the message was delivered locally but could not be stored in shared history');
      }
      logger.error({ err: (err as Error).message, stack: (err as Error).stack }, 'admin request failed');
      return sendError(res, 500, 'internal', 'internal error');
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(receipt);
  };

  // Requests the fast path leaves to express (chunked or oversized bodies) publish here.
  app.post('/', readBody, (req: Request, res: Response) =>
    publish(req, res, instanceFromQuery(req.query.instance), typeof req.body === 'string' ? req.body : ''),
  );

  app.all('/', (_req, res) => {
    res.set('Allow', 'POST');
    sendError(res, 405, 'method_not_allowed', 'publish with POST /');
  });

  app.all('/status/', async (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(await options.status.report(instanceFromQuery(req.query.instance))));
  });

  options.extraRoutes?.(app);

  app.use((_req, res) => sendError(res, 404, 'not_found', 'no such endpoint'));

  // Body errors from express.text: size, aborted uploads, bad charsets. All the caller's doing.
  app.use((err: Error & { type?: string; status?: number }, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return;
    if (err.type === 'entity.too.large') {
      node.counters.reject('body_too_large');
      logger.warn({ remote: req.socket.remoteAddress }, 'publish refused: body too large');
      res.set('Connection', 'close');
      return sendError(res, 413, 'body_too_large', `the body exceeds ${options.maxBodyBytes} bytes`);
    }
    if (err.status && err.status >= 400 && err.status < 500) {
      node.counters.reject(err.type ?? 'bad_request');
      return sendError(res, 400, 'bad_request', err.message);
    }
    logger.error({ err: err.message, stack: err.stack }, 'admin request failed');
    sendError(res, 500, 'internal', 'internal error');
  });

  /**
   * Publishing is the hot path, so `POST /` with a Content-Length within the limit (what
   * Phorge and peers send) is served straight from node:http: express's per-request setup
   * (prototype swaps, router, query parsing) cost about as much CPU as the rest of a publish
   * (bench: ~130 us per request). Same query parser ('simple' is node:querystring), same
   * checks and answers; everything else, chunked and oversized bodies included, goes to express.
   */
  const fastPublish = (req: IncomingMessage, res: ServerResponse, url: string): void => {
    const q = url.indexOf('?');
    const instance = instanceFromQuery(q === -1 ? undefined : parseQuery(url.slice(q + 1)).instance);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => void publish(req, res, instance, Buffer.concat(chunks).toString('utf8')));
    req.once('error', (err) => {
      node.counters.reject('request.aborted');
      if (!res.headersSent) sendError(res, 400, 'bad_request', err.message);
    });
  };

  return (req, res) => {
    const url = req.url ?? '';
    const length = req.headers['content-length'];
    if (
      req.method === 'POST' &&
      (url === '/' || url.startsWith('/?')) &&
      length !== undefined &&
      Number(length) <= options.maxBodyBytes
    ) {
      fastPublish(req, res, url);
    } else {
      app(req, res);
    }
  };
}
