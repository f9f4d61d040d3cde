/**
 * A load worker for the reconnect storm (bench/storm.mjs), forked by it: holds clients of
 * @tidings/client (TidingsClient, raw Aphlict transport), which reconnect and replay as
 * Phorge's JX.Aphlict does (at once after a connection that had opened, then 2 s doubling;
 * replay on reconnect; de-duplication by uniqueID), or with the reconnect options it is given.
 *
 * Each client gets its own WebSocket class, a thin tap around `ws` that the client uses as
 * it would the browser's: it records every frame as it comes off the wire (before the
 * client's de-duplication), tagged with the connection's number, and every connection's
 * attempt, open, close, confirmed subscription and finished replay. A raw replay has no end
 * marker, but the gateway handles a socket's frames in order and sends a replay's messages
 * before it reads the next frame: the tap sends a ping right after the client's replay
 * command, and that ping's pong (kept from the client) says the replay was sent.
 */
import WebSocket from 'ws';
import { TidingsClient } from '@tidings/client';
import { DeliveryLog } from './delivery-log.mjs';
import { phidOf } from './publisher.mjs';
import { nowMicros, sleep } from './stats.mjs';
import { EVENT } from './storm-events.mjs';

const PING = '{"command":"ping"}';
const PONG = '{"type":"pong"}';

/** Frames as they arrived (tag: connection number), and messages the client handed to the application. */
const wire = new DeliveryLog(1 << 18);
const app = new DeliveryLog(1 << 18);
/** id -> {id, client, gen, events: [type, at, gen, code][], waiters} */
const clients = new Map();

function event(state, type, gen, code = 0) {
  const at = nowMicros();
  state.events.push([type, at, gen, code]);
  for (const w of state.waiters.splice(0)) w(type, gen);
}

/** The WebSocket class one client uses: `ws` underneath, recording what passes. */
function tapFor(state) {
  return class Tap {
    constructor(url) {
      this.gen = state.gen++;
      /** Who sent each ping still unanswered, in order (pongs come back in order). */
      this.pings = [];
      this.confirmed = false;
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      this.onerror = null;
      event(state, EVENT.attempt, this.gen);
      const ws = (this.ws = new WebSocket(url, { perMessageDeflate: false }));
      ws.on('open', () => {
        event(state, EVENT.open, this.gen);
        this.onopen?.({});
      });
      ws.on('message', (data) => this.onData(data.toString()));
      ws.on('error', (err) => this.onerror?.(err));
      ws.on('close', (code, reason) => {
        event(state, EVENT.close, this.gen, code);
        this.onclose?.({ code, reason: reason.toString() });
      });
    }

    get readyState() {
      return this.ws.readyState;
    }

    send(text) {
      if (text === PING) this.pings.push('client');
      this.ws.send(text);
      if (text.startsWith('{"command":"replay"')) {
        event(state, EVENT.replayAsked, this.gen);
        this.pings.push('tap');
        this.ws.send(PING);
      }
    }

    close(code, reason) {
      try {
        this.ws.close(code, reason);
      } catch {
        this.ws.terminate();
      }
    }

    onData(text) {
      if (text === PONG) {
        // The client pings right after its subscribe: the first pong confirms the subscription.
        if (!this.confirmed) {
          this.confirmed = true;
          event(state, EVENT.ready, this.gen);
        }
        if (this.pings.shift() === 'tap') {
          event(state, EVENT.replayed, this.gen);
          return;
        }
      } else {
        const at = nowMicros();
        const msg = JSON.parse(text);
        if (typeof msg.seq === 'number') wire.push(state.id, msg.seq, at, at - msg.sentAt, this.gen);
      }
      this.onmessage?.({ data: text });
    }
  };
}

/** Starts one client; resolves true once its first connection's subscription is confirmed. */
function startClient({ id, phids }, url, reconnect, timeoutMs = 30_000) {
  const state = { id, gen: 0, events: [], waiters: [], errors: 0 };
  const client = new TidingsClient(url, { WebSocket: tapFor(state), reconnect });
  state.client = client;
  clients.set(id, state);
  client.on('error', () => state.errors++);
  client.on('message', (msg) => {
    if (typeof msg.seq !== 'number') return;
    const at = nowMicros();
    app.push(id, msg.seq, at, at - msg.sentAt, state.gen - 1);
  });
  void client.subscribe(phids.map(phidOf));
  client.open();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const wait = (type) => {
      if (type === EVENT.ready) {
        clearTimeout(timer);
        resolve(true);
      } else state.waiters.push(wait);
    };
    state.waiters.push(wait);
  });
}

/** Clients that lost a connection at or after `since`, and how many of them have replayed on a new one since. */
function progress(since) {
  let lost = 0;
  let replayed = 0;
  for (const state of clients.values()) {
    const close = state.events.find(([type, at]) => type === EVENT.close && at >= since);
    if (!close) continue;
    lost++;
    if (state.events.some(([type, at, gen]) => type === EVENT.replayed && at >= close[1] && gen > close[2])) replayed++;
  }
  return { lost, replayed };
}

process.on('message', async (cmd) => {
  switch (cmd.type) {
    case 'connect': {
      let next = 0;
      let failed = 0;
      const lane = async () => {
        while (next < cmd.clients.length) {
          if (!(await startClient(cmd.clients[next++], cmd.url, cmd.reconnect))) failed++;
        }
      };
      await Promise.all(Array.from({ length: cmd.concurrency ?? 50 }, lane));
      process.send({ type: 'connected', failed });
      return;
    }
    case 'progress':
      process.send({ type: 'progress', ...progress(cmd.since) });
      return;
    case 'collect': {
      wire.dump(cmd.wireFile);
      app.dump(cmd.appFile);
      const rows = [...clients.values()].map((s) => ({ id: s.id, events: s.events, stats: s.client.stats, errors: s.errors }));
      process.send({ type: 'collected', clients: rows });
      return;
    }
    case 'close':
      await Promise.race([Promise.all([...clients.values()].map((s) => s.client.close())), sleep(5_000)]);
      process.send({ type: 'closed' });
      process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
