/**
 * `tidings status`: a node's /status/ (and /readyz when it is a Tidings node) printed for
 * people; `--json` prints the raw status object. Works against real Aphlict nodes too.
 */
import { adminRequest, CommandError, describeErrorAnswer, parseAdminUrl, parseToken, positiveInt, shownUrl } from './admin-request';

export interface StatusArgs {
  admin: string;
  instance?: string;
  json?: boolean;
  timeout: string;
  /** Admin token (`--token` or TIDINGS_TOKEN), sent as `Authorization: Bearer`. */
  token?: string;
}

type Json = Record<string, unknown>;

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  let s = Math.floor(ms / 1_000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  parts.push(`${s}s`);
  return parts.join(' ');
}

const KNOWN = new Set([
  'instance', 'uptime', 'clients.active', 'clients.total', 'messages.in', 'messages.out', 'version',
  'history.size', 'history.age', 'tidings.version', 'fingerprint', 'clients.node.active', 'clients.slowReaderCloses',
  'messages.duplicatesDropped', 'messages.touchedDropped', 'messages.fromBus', 'messages.replays', 'messages.rejected',
  'history.error', 'relay.peers', 'bus', 'canary', 'ready', 'socketio',
]);

const num = (v: unknown) => (typeof v === 'number' ? String(v) : v === undefined || v === null ? '-' : JSON.stringify(v));

/**
 * The status object as aligned `label  value` lines, in three parts: the node itself, the
 * figures of the instance asked for (`--instance`; Aphlict's `clients.*` and, on Tidings,
 * `history.*`), and the figures of the whole node, all instances together (message counters,
 * bus, relay, ...). Aphlict keeps one history for all instances, so there it is the node's.
 */
export function formatStatus(origin: string, status: Json, readiness: Json | null): string {
  type Row = [label: string, value: string] | [heading: string];
  const rows: Row[] = [];
  const add = (label: string, value: string) => rows.push([label, value]);
  const isTidings = status['tidings.version'] !== undefined;
  const kind = isTidings ? `Tidings ${String(status['tidings.version'])}` : 'Aphlict';
  const instance = String(status.instance ?? 'default');
  add('node', `${origin} (${kind}, status version ${num(status.version)})`);
  if (status.fingerprint !== undefined) add('fingerprint', String(status.fingerprint));
  if (typeof status.uptime === 'number') add('uptime', formatDuration(status.uptime));
  if (readiness) {
    if (readiness.status === 'ready') add('ready', 'yes');
    else {
      const reasons = Array.isArray(readiness.reasons) ? (readiness.reasons as Json[]).map((r) => `${String(r.code)}: ${String(r.message)}`) : [];
      add('ready', `NO${reasons.length ? ` (${reasons.join('; ')})` : ''}`);
    }
  }
  const age = status['history.age'];
  const history = `${num(status['history.size'])} messages${typeof age === 'number' ? `, oldest ${formatDuration(age)} old` : ''}`;

  rows.push([`instance ${instance}`]);
  add('  clients', `${num(status['clients.active'])} active, ${num(status['clients.total'])} connections ever`);
  if (isTidings) {
    add('  history', history);
    if (status['history.error']) add('  history error', String(status['history.error']));
  }

  rows.push(['whole node (all instances)']);
  if (status['clients.node.active'] !== undefined) add('  clients', `${num(status['clients.node.active'])} active`);
  let messages = `${num(status['messages.in'])} in, ${num(status['messages.out'])} delivered`;
  if (status['messages.fromBus'] !== undefined) messages += `, ${num(status['messages.fromBus'])} from the bus`;
  if (status['messages.duplicatesDropped'] !== undefined) messages += `, ${num(status['messages.duplicatesDropped'])} duplicates dropped`;
  if (status['messages.replays'] !== undefined) messages += `, ${num(status['messages.replays'])} replays`;
  add('  messages', messages);
  if (!isTidings) add('  history', history);
  const rejected = status['messages.rejected'] as Json | undefined;
  if (rejected && Object.keys(rejected).length) {
    add('  rejected', Object.entries(rejected).map(([k, v]) => `${k} ${num(v)}`).join(', '));
  }
  if (typeof status['clients.slowReaderCloses'] === 'number' && status['clients.slowReaderCloses'] > 0) {
    add('  slow readers', `${status['clients.slowReaderCloses']} closed`);
  }
  const bus = status.bus as Json | undefined;
  if (bus) add('  bus', `${bus.connected ? 'connected' : 'NOT connected'}${bus.nodeId ? ` (node id ${String(bus.nodeId)})` : ''}`);
  const canary = status.canary as Json | undefined;
  if (canary) {
    const rt = typeof canary.lastRoundTripMs === 'number' ? `last round trip ${canary.lastRoundTripMs.toFixed(2)} ms` : 'none came back yet';
    add('  bus canary', `${rt}; ${num(canary.sent)} sent, ${num(canary.failed)} failed${canary.lastError ? `; last error: ${String(canary.lastError)}` : ''}`);
  }
  const sio = status.socketio as Json | undefined;
  if (sio && typeof sio === 'object') {
    add(
      '  socket.io',
      sio.enabled === false
        ? 'off'
        : `${num(sio.active)} active at ${String(sio.path ?? '/socket.io/')}, adapter ${String(sio.adapter ?? '-')}, ` +
            `${num(sio.deliveries)} delivered, ${num(sio.replays)} replays`,
    );
  }
  const peers = status['relay.peers'];
  if (Array.isArray(peers)) {
    if (peers.length === 0) add('  relay peers', 'none');
    for (const p of peers as Json[]) {
      add(
        '  relay peer',
        `${String(p.protocol ?? 'http')}://${String(p.peer)} ${String(p.state)}: ${num(p.sent)} sent, ${num(p.failed)} failed, ` +
          `${num(p.dropped)} dropped, ${num(p.queued)} queued${p.lastError ? `; last error: ${String(p.lastError)}` : ''}`,
      );
    }
  }
  // Keys this CLI does not know yet (newer nodes): Tidings' own keys are all node-wide.
  for (const [key, value] of Object.entries(status)) {
    if (!KNOWN.has(key)) add(`  ${key}`, typeof value === 'string' ? value : JSON.stringify(value));
  }
  const width = Math.max(...rows.filter((r) => r.length === 2).map(([l]) => l.length));
  return rows.map((r) => (r.length === 1 ? r[0] : `${r[0].padEnd(width)}  ${r[1]}`)).join('\n') + '\n';
}

export async function statusCommand(args: StatusArgs, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const admin = parseAdminUrl(args.admin);
  const timeoutMs = positiveInt('--timeout', args.timeout);
  const token = parseToken(args.token);
  const res = await adminRequest(admin, '/status/', { instance: args.instance, timeoutMs, token });
  if (res.status !== 200) throw new CommandError(`${shownUrl(admin, '/status/')} answered ${describeErrorAnswer(res, admin, token)}`);
  const status = res.json;
  if (status === null || typeof status !== 'object' || Array.isArray(status)) {
    throw new CommandError(`${shownUrl(admin, '/status/')} did not answer a JSON object: ${res.text.slice(0, 200)}`);
  }
  if (args.json) {
    out.write(`${JSON.stringify(status, null, 2)}\n`);
    return;
  }
  // Readiness is Tidings' own; a real Aphlict node answers 404 and the line is left out.
  let readiness: Json | null = null;
  try {
    const r = await adminRequest(admin, '/readyz', { timeoutMs, token });
    if ((r.status === 200 || r.status === 503) && r.json && typeof r.json === 'object') readiness = r.json as Json;
  } catch {
    readiness = null;
  }
  out.write(formatStatus(admin.origin, status as Json, readiness));
}
