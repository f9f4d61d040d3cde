/**
 * `tidings notify`: publishes one message to a node's admin port, as Phorge does, and prints
 * the receipt (the node's fingerprint).
 */
import { randomBytes } from 'node:crypto';
import { adminRequest, CommandError, describeErrorAnswer, parseAdminUrl, parseToken, positiveInt } from './admin-request';

export interface NotifyArgs {
  admin: string;
  instance?: string;
  /** Comma-separated PHIDs. */
  subscribers: string;
  type: string;
  key?: string;
  /** A JSON object whose fields are added to the message. */
  data?: string;
  timeout: string;
  json?: boolean;
  /** Admin token (`--token` or TIDINGS_TOKEN), sent as `Authorization: Bearer`. */
  token?: string;
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 32 random characters, like Phorge's uniqueID. */
function uniqueId(): string {
  return Array.from(randomBytes(32), (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

export function buildMessage(args: Pick<NotifyArgs, 'subscribers' | 'type' | 'key' | 'data'>): Record<string, unknown> {
  const subscribers = args.subscribers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (subscribers.length === 0) throw new CommandError('--subscribers: give at least one PHID (comma-separated)', 2);
  let data: Record<string, unknown> = {};
  if (args.data !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(args.data);
    } catch (err) {
      throw new CommandError(`--data: not JSON: ${(err as Error).message}`, 2);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new CommandError('--data: must be a JSON object; its fields are added to the message', 2);
    }
    data = parsed as Record<string, unknown>;
  }
  return {
    type: args.type,
    ...(args.key !== undefined ? { key: args.key } : {}),
    ...data,
    subscribers,
    uniqueID: typeof data.uniqueID === 'string' ? data.uniqueID : uniqueId(),
  };
}

export async function notifyCommand(args: NotifyArgs, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const admin = parseAdminUrl(args.admin);
  const timeoutMs = positiveInt('--timeout', args.timeout);
  const token = parseToken(args.token);
  const message = buildMessage(args);
  // Absent or empty both mean the default instance (DESIGN.md section 1).
  const instance = args.instance || 'default';
  const res = await adminRequest(admin, '/', { method: 'POST', body: JSON.stringify(message), instance, timeoutMs, token });
  if (res.status !== 200) throw new CommandError(`${admin.origin} refused the message: ${describeErrorAnswer(res, admin, token)}`);
  const receipt = res.json as { fingerprint?: unknown } | undefined;
  if (args.json) {
    out.write(`${JSON.stringify({ receipt: res.json ?? res.text, message, instance })}\n`);
    return;
  }
  const fingerprint = receipt && typeof receipt.fingerprint === 'string' ? receipt.fingerprint : '(no fingerprint in the receipt)';
  out.write(
    `published ${String(message.uniqueID)} to instance "${instance}" at ${admin.origin}\n` +
      `  subscribers: ${(message.subscribers as string[]).join(', ')}\n` +
      `  receipt: fingerprint ${fingerprint}\n`,
  );
}
