/**
 * The console page: sign in (when the admin port needs a token), then poll the overview
 * every 2 s and show the cluster, each gateway's card, the publish form and the live tail.
 */
import type { ConsoleOverview, GatewaySnapshot } from '@tidings/protocol';
import { api, ApiError, session, UnauthorizedError } from './api';
import { byId, fillRows, h } from './dom';
import { clientUrl, count, duration, ms, parsePhids, rate, uniqueId } from './format';
import { GatewayCard } from './gateway-card';
import { LiveTail } from './live-tail';

const POLL_MS = 2_000;

const loginSection = byId('login');
const loginForm = byId<HTMLFormElement>('login-form');
const loginInput = byId<HTMLInputElement>('admin-token');
const loginError = byId('login-error');
const dashboard = byId('dashboard');
const dashboardError = byId('dashboard-error');
const signOut = byId<HTMLButtonElement>('sign-out');
const servedBy = byId('served-by');
const clusterSource = byId('cluster-source');
const clusterBody = byId<HTMLTableElement>('cluster-table').tBodies[0];
const cardsBox = byId('cards');

const cards = new Map<string, GatewayCard>();
const tail = new LiveTail();
let pollTimer: number | undefined;
let signedIn = false;

function showLogin(message: string | null): void {
  signedIn = false;
  window.clearTimeout(pollTimer);
  void tail.end(null);
  dashboard.hidden = true;
  signOut.hidden = true;
  loginSection.hidden = false;
  loginError.hidden = message === null;
  loginError.textContent = message ?? '';
  loginInput.focus();
}

function showProblem(message: string | null): void {
  dashboardError.hidden = message === null;
  dashboardError.textContent = message ?? '';
}

function stateText(s: GatewaySnapshot): string {
  return s.ready ? 'ready' : `unready: ${s.reasons.map((r) => r.code).join(', ')}`;
}

function renderCluster(overview: ConsoleOverview): void {
  const self = overview.gateways[0];
  servedBy.textContent = `Served by ${self.fingerprint} on ${self.hostname} · updated ${new Date().toLocaleTimeString('en-GB')}`;
  const others = overview.gateways.length - 1;
  clusterSource.textContent =
    overview.cluster === 'redis'
      ? `${overview.gateways.length} gateway${overview.gateways.length === 1 ? '' : 's'} announced in Redis (each refreshes its entry every 2 s).`
      : overview.cluster === 'relay'
        ? `This gateway and its relay peers (no Redis: the peers' own figures are on their consoles).`
        : `A single gateway (no Redis, no relay peers).${others ? '' : ''}`;
  if (overview.clusterError) clusterSource.textContent += ` ${overview.clusterError}`;

  const rows = overview.gateways.map((s) =>
    h(
      'tr',
      { 'data-fingerprint': s.fingerprint },
      h('th', { scope: 'row' }, h('code', {}, s.fingerprint)),
      h('td', {}, s.hostname),
      h('td', {}, h('span', { class: `badge ${s.ready ? 'ok' : 'bad'}` }, stateText(s))),
      h('td', { class: 'num', 'data-figure': 'connections' }, count(s.connections.total)),
      h('td', { class: 'num' }, rate(s.rates.publishesPerSecond)),
      h('td', { class: 'num' }, rate(s.rates.deliveriesPerSecond)),
      h('td', { class: 'num' }, ms(s.eventLoop.p99Ms)),
      h('td', { class: 'num' }, s.canary ? duration(s.canary.ageMs) : '—'),
      h('td', { class: 'num' }, duration(s.uptimeMs)),
    ),
  );
  // Without Redis, the relay peers are listed from this gateway's relay status.
  if (overview.cluster === 'relay') {
    for (const peer of self.relay.filter((p) => p.state !== 'self')) {
      rows.push(
        h(
          'tr',
          { 'data-peer': peer.peer },
          h('th', { scope: 'row' }, h('code', {}, peer.fingerprint ?? '(fingerprint not learned yet)')),
          h('td', {}, peer.peer),
          h('td', {}, h('span', { class: `badge ${peer.state === 'up' ? 'ok' : peer.state === 'down' ? 'bad' : ''}` }, `relay peer: ${peer.state}`)),
          h('td', { class: 'num', colspan: '6' }, `sent ${count(peer.sent)} · failed ${count(peer.failed)} · dropped ${count(peer.dropped)} · queued ${count(peer.queued)}`),
        ),
      );
    }
  }
  fillRows(clusterBody, rows, 9, 'no gateway');

  const seen = new Set<string>();
  overview.gateways.forEach((s, index) => {
    seen.add(s.fingerprint);
    let card = cards.get(s.fingerprint);
    if (!card) {
      card = new GatewayCard(s.fingerprint, index === 0);
      cards.set(s.fingerprint, card);
    }
    // In the overview's order (this gateway first), without moving cards that are in place.
    if (cardsBox.children[index] !== card.root) cardsBox.insertBefore(card.root, cardsBox.children[index] ?? null);
    card.update(s);
  });
  for (const [fingerprint, card] of cards) {
    if (!seen.has(fingerprint)) {
      card.destroy();
      cards.delete(fingerprint);
    }
  }
}

async function poll(): Promise<void> {
  try {
    const overview = await api.overview();
    showProblem(null);
    if (!signedIn) {
      signedIn = true;
      loginSection.hidden = true;
      dashboard.hidden = false;
      signOut.hidden = session.token === null;
      const self = overview.gateways[0];
      const client = self.servers.find((s) => s.type === 'client');
      tail.configure(overview, client ? clientUrl(client, location.hostname) : null);
    }
    renderCluster(overview);
  } catch (err) {
    if (err instanceof UnauthorizedError) {
      const hadToken = session.token !== null;
      session.token = null;
      return showLogin(hadToken ? 'The gateway refused the saved token: sign in again.' : null);
    }
    showProblem(`Cannot read the gateway's figures: ${(err as Error).message}. Retrying every ${POLL_MS / 1000} s.`);
  }
  pollTimer = window.setTimeout(() => void poll(), POLL_MS);
}

loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = loginInput.value.trim();
  if (!token) {
    loginError.hidden = false;
    loginError.textContent = 'Enter an admin token.';
    return;
  }
  void api.overview(token).then(
    () => {
      session.token = token;
      loginInput.value = '';
      loginError.hidden = true;
      void poll();
    },
    (err: Error) => {
      loginError.hidden = false;
      loginError.textContent = err instanceof UnauthorizedError ? 'That token was refused (it is not one of auth.adminTokens).' : `Cannot reach the gateway: ${err.message}`;
      loginInput.select();
    },
  );
});

signOut.addEventListener('click', () => {
  session.token = null;
  showLogin(null);
});

const publishForm = byId<HTMLFormElement>('publish-form');
const publishOutcome = byId('publish-outcome');
const publishButton = byId<HTMLButtonElement>('publish-button');
publishForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(publishForm);
  const instance = String(data.get('instance') ?? '').trim() || 'default';
  const phids = parsePhids(String(data.get('phids') ?? ''));
  const type = String(data.get('type') ?? '').trim() || 'notification';
  publishOutcome.classList.remove('problem');
  if (phids.length === 0) {
    publishOutcome.classList.add('problem');
    publishOutcome.textContent = 'Give at least one PHID.';
    return;
  }
  const message = { type, key: String(Date.now()), subscribers: phids, uniqueID: uniqueId(), source: 'tidings-console' };
  publishButton.disabled = true;
  api
    .publish(instance, message)
    .then(
      (receipt) => {
        publishOutcome.textContent = `Accepted by ${receipt.fingerprint} at ${new Date().toLocaleTimeString('en-GB')} (uniqueID ${message.uniqueID}).`;
      },
      (err: Error) => {
        if (err instanceof UnauthorizedError) return showLogin('The gateway refused the token: sign in again.');
        publishOutcome.classList.add('problem');
        publishOutcome.textContent = err instanceof ApiError ? `Refused (${err.status} ${err.code}): ${err.message}` : `Failed: ${err.message}`;
      },
    )
    .finally(() => {
      publishButton.disabled = false;
    });
});

// With admin tokens configured (the gateway marks the page so), no request is made without one.
if (document.body.dataset.adminAuth === 'required' && session.token === null) showLogin(null);
else void poll();
