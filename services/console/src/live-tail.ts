/**
 * The live tail: the page's own client connection to the gateway's client port, made with
 * @tidings/client (bundled), subscribed to the PHIDs typed in. When the gateway requires
 * connection tokens, a fresh short-lived one is minted by the admin API before every
 * connection attempt, or a pasted one is used when the gateway cannot mint.
 */
import { connect, TidingsAuthError, type TidingsClient, type TidingsMessage, type TransportName } from '@tidings/client';
import type { ConsoleOverview } from '@tidings/protocol';
import { api } from './api';
import { byId, h } from './dom';
import { parsePhids } from './format';

const MAX_SHOWN = 100;

export class LiveTail {
  private readonly form = byId<HTMLFormElement>('tail-form');
  private readonly url = byId<HTMLInputElement>('tail-url');
  private readonly transport = byId<HTMLSelectElement>('tail-transport');
  private readonly instance = byId<HTMLInputElement>('tail-instance');
  private readonly phids = byId<HTMLInputElement>('tail-phids');
  private readonly tokenField = byId('tail-token-field');
  private readonly token = byId<HTMLInputElement>('tail-token');
  private readonly tokenHelp = byId('tail-token-help');
  private readonly start = byId<HTMLButtonElement>('tail-start');
  private readonly stop = byId<HTMLButtonElement>('tail-stop');
  private readonly status = byId('tail-status');
  private readonly list = byId<HTMLOListElement>('tail-messages');
  private client: TidingsClient | null = null;
  private tail: ConsoleOverview['tail'] | null = null;
  private socketioPath = '/socket.io/';

  constructor() {
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.begin();
    });
    this.stop.addEventListener('click', () => void this.end('stopped'));
  }

  /** What the gateway says about tokens and transports; the URL is filled in once. */
  configure(overview: ConsoleOverview, defaultUrl: string | null): void {
    this.tail = overview.tail;
    if (!this.url.value && defaultUrl) this.url.value = defaultUrl;
    const socketio = this.transport.querySelector<HTMLOptionElement>('option[value="socket.io"]')!;
    socketio.disabled = overview.tail.socketioPath === null;
    if (overview.tail.socketioPath) this.socketioPath = overview.tail.socketioPath;
    const needsPaste = overview.tail.clientTokens === 'required' && !overview.tail.canMintTokens;
    this.tokenField.hidden = !needsPaste;
    this.tokenHelp.textContent = needsPaste
      ? 'This gateway requires connection tokens but cannot mint one (no auth.clientTokens.hmacSecret): paste a token your backend minted for these PHIDs.'
      : '';
  }

  private setStatus(text: string, problem = false): void {
    this.status.textContent = text;
    this.status.classList.toggle('problem', problem);
  }

  private async begin(): Promise<void> {
    await this.end(null);
    const phids = parsePhids(this.phids.value);
    const instance = this.instance.value.trim() || 'default';
    const url = this.url.value.trim();
    if (!url) return this.setStatus('Give the client port URL (ws://host:port).', true);
    if (phids.length === 0) return this.setStatus('Give at least one PHID to watch.', true);
    const tail = this.tail;
    let tokenOptions: { token?: string; getToken?: () => Promise<string> } = {};
    if (tail?.clientTokens === 'required') {
      if (tail.canMintTokens) tokenOptions = { getToken: async () => (await api.clientToken(instance, phids)).token };
      else if (this.token.value.trim()) tokenOptions = { token: this.token.value.trim() };
      else return this.setStatus('This gateway requires connection tokens and cannot mint one: paste a token to tail.', true);
    }
    const transport = this.transport.value as TransportName;
    let client: TidingsClient;
    try {
      client = connect(url, {
        instance,
        transport,
        socketioPath: this.socketioPath,
        socketioTransports: ['websocket'],
        ...tokenOptions,
      });
    } catch (err) {
      return this.setStatus(`Cannot connect: ${(err as Error).message}`, true);
    }
    this.client = client;
    this.start.disabled = true;
    this.stop.disabled = false;
    this.setStatus(`Connecting to ${url}…`);
    client.on('status', (s) => {
      if (this.client !== client) return;
      if (s.state === 'open') this.setStatus(`Watching ${phids.length} PHID${phids.length === 1 ? '' : 's'} in ${instance} over ${transport === 'aphlict' ? 'a raw WebSocket' : 'Socket.IO'}.`);
      else if (s.state === 'connecting') this.setStatus(`Connecting to ${url}…`);
      else if (s.state === 'reconnecting') this.setStatus(`Connection lost (${s.reason}); retrying in ${Math.round(s.delayMs / 1000)} s.`, true);
    });
    client.on('error', (err) => {
      if (this.client !== client) return;
      if (err instanceof TidingsAuthError) this.setStatus(`The client port refused the connection token (${err.code}): ${err.message}`, true);
    });
    client.on('message', (message) => this.show(message));
    client.subscribe(phids).catch((err: Error) => {
      if (this.client === client) this.setStatus(`Subscribe failed: ${err.message}`, true);
    });
  }

  private show(message: TidingsMessage): void {
    const time = new Date().toLocaleTimeString('en-GB');
    const subscribers = Array.isArray(message.subscribers) ? message.subscribers.join(', ') : '';
    const item = h(
      'li',
      { 'data-unique-id': typeof message.uniqueID === 'string' ? message.uniqueID : undefined },
      h('span', { class: 'tail-head' }, h('time', {}, time), ' ', h('strong', {}, String(message.type ?? '(no type)')), message.key === undefined ? '' : ` key ${String(message.key)}`, subscribers ? ` → ${subscribers}` : ''),
      h('details', {}, h('summary', {}, 'JSON'), h('pre', {}, JSON.stringify(message, null, 2))),
    );
    this.list.prepend(item);
    while (this.list.children.length > MAX_SHOWN) this.list.lastElementChild?.remove();
  }

  /** Closes the connection; `reason` shown unless null. */
  async end(reason: string | null): Promise<void> {
    const client = this.client;
    this.client = null;
    this.start.disabled = false;
    this.stop.disabled = true;
    if (client) await client.close();
    if (reason) this.setStatus(`Tail ${reason}.`);
  }
}
