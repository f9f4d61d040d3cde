/**
 * A load worker for the soak (bench/soak.mjs), forked by it: holds raw Aphlict sockets, some
 * for the whole run ("stable") and some that it closes and opens again at a steady rate
 * ("churn": each close is followed at once by a new connection for the same slot, with new
 * PHIDs, so the count stays steady while the gateways add and drop sockets and PHIDs all the
 * time). Every connection is one "incarnation": its PHIDs, when its subscription was
 * confirmed (a pong after the subscribe) and when it closed, and by whom. Every delivery goes
 * to a DeliveryLog; the main process decides afterwards what each incarnation should have
 * received while it was connected.
 */
import WebSocket from 'ws';
import { DeliveryLog } from './delivery-log.mjs';
import { phidOf } from './publisher.mjs';
import { createRandom, nowMicros, pickDistinct, sleep } from './stats.mjs';

const PONG = '{"type":"pong"}';
const log = new DeliveryLog(1 << 18);
/** Every connection this worker made: {id, slot, churn, phids, readyAt, closeAt, closedBy}. */
const incarnations = [];
/** Ready connections by slot: {inc, ws, onMessage}. */
const live = new Map();
let worker = 0;
let nextLocal = 0;
let unexpectedCloses = 0;
let connectFailures = 0;
let churnCloses = 0;
let churnOpens = 0;
let windowLatencies = [];
let churn = null;

const CLOSED_BY = { '': 0, client: 1, server: 2, failed: 3 };

/** Opens a connection for a slot; resolves true once its subscription is confirmed, false if it failed. */
function openIncarnation(slot, url, phids, isChurn, timeoutMs = 20_000) {
  const inc = { id: worker * 1_000_000 + nextLocal++, slot, churn: isChurn, phids, readyAt: 0, closeAt: 0, closedBy: '' };
  incarnations.push(inc);
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => ws.terminate(), timeoutMs);
    ws.on('open', () => {
      ws.send(JSON.stringify({ command: 'subscribe', data: phids.map(phidOf) }));
      ws.send('{"command":"ping"}');
    });
    const onMessage = (data) => {
      const text = data.toString();
      if (text === PONG) {
        if (!inc.readyAt) {
          inc.readyAt = nowMicros();
          clearTimeout(timer);
          live.set(slot, { inc, ws, onMessage, url });
          resolve(true);
        }
        return;
      }
      const at = nowMicros();
      const msg = JSON.parse(text);
      if (typeof msg.seq !== 'number') return;
      const latency = at - msg.sentAt;
      log.push(inc.id, msg.seq, at, latency);
      windowLatencies.push(latency);
    };
    ws.on('message', onMessage);
    ws.on('error', () => {}); // the close that follows says it
    ws.on('close', () => {
      clearTimeout(timer);
      if (inc.closeAt) return; // closed by us
      inc.closeAt = nowMicros();
      if (inc.readyAt) {
        inc.closedBy = 'server';
        unexpectedCloses++;
        if (live.get(slot)?.inc === inc) live.delete(slot);
      } else {
        inc.closedBy = 'failed';
        connectFailures++;
        resolve(false);
      }
    });
  });
}

/** Closes a slot's connection from the client side: politely (1000) or abruptly (TCP close, no close frame). */
function closeSlot(slot, abrupt) {
  const entry = live.get(slot);
  if (!entry) return null;
  live.delete(slot);
  entry.inc.closeAt = nowMicros();
  entry.inc.closedBy = 'client';
  // Nothing is recorded after the close began: what arrives later is not counted either way.
  entry.ws.off('message', entry.onMessage);
  if (abrupt) entry.ws.terminate();
  else entry.ws.close(1000, 'churn');
  return entry;
}

/**
 * Churn: `perSecond` closes a second, each followed at once by a new connection for the same
 * slot with new PHIDs (3 of `phidCount`); a slot whose new connection failed is opened again
 * on the next tick. Closes alternate between polite and abrupt.
 */
function startChurn({ perSecond, slots, phidCount, seed, tickMs = 100 }) {
  const random = createRandom(seed);
  const urls = new Map(slots.map((s) => [s.slot, s.url]));
  const slotIds = slots.map((s) => s.slot);
  const waiting = [];
  const t0 = performance.now();
  let done = 0;
  let stopped = false;
  let timer;
  const opening = new Set();
  const reopen = (slot) => {
    const p = openIncarnation(slot, urls.get(slot), pickDistinct(random, phidCount, 3), true).then((ok) => {
      opening.delete(p);
      if (ok) churnOpens++;
      else waiting.push(slot);
    });
    opening.add(p);
  };
  const tick = () => {
    if (stopped) return;
    while (waiting.length) reopen(waiting.shift());
    const due = Math.floor(((performance.now() - t0) / 1000) * perSecond);
    while (done < due) {
      done++;
      // A random churn slot that is connected now (a few tries: most are).
      for (let attempt = 0; attempt < 8; attempt++) {
        const slot = slotIds[Math.floor(random() * slotIds.length)];
        if (!live.has(slot)) continue;
        closeSlot(slot, done % 2 === 0);
        churnCloses++;
        reopen(slot);
        break;
      }
    }
    timer = setTimeout(tick, tickMs);
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.race([Promise.all([...opening]), sleep(25_000)]);
      // Slots whose last attempt failed: open them again, so every slot ends connected.
      while (waiting.length) {
        const slot = waiting.shift();
        if (await openIncarnation(slot, urls.get(slot), pickDistinct(random, phidCount, 3), true)) churnOpens++;
      }
    },
  };
}

async function connectAll(sockets, concurrency) {
  let next = 0;
  let failed = 0;
  const lane = async () => {
    while (next < sockets.length) {
      const s = sockets[next++];
      if (!(await openIncarnation(s.slot, s.url, s.phids, s.churn))) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return failed;
}

process.on('message', async (cmd) => {
  switch (cmd.type) {
    case 'connect': {
      worker = cmd.worker;
      const failed = await connectAll(cmd.sockets, cmd.concurrency ?? 100);
      process.send({ type: 'connected', failed });
      return;
    }
    case 'churn':
      churn = startChurn(cmd);
      process.send({ type: 'churning' });
      return;
    case 'stop-churn':
      await churn?.stop();
      process.send({ type: 'churn-stopped' });
      return;
    case 'window': {
      const lat = windowLatencies;
      windowLatencies = [];
      process.send({
        type: 'window',
        latencies: lat,
        live: live.size,
        unexpectedCloses,
        connectFailures,
        churnCloses,
        churnOpens,
      });
      return;
    }
    case 'collect': {
      log.dump(cmd.file);
      const rows = incarnations.map((i) => [i.id, i.slot, i.churn ? 1 : 0, ...i.phids, i.readyAt, i.closeAt, CLOSED_BY[i.closedBy]]);
      process.send({ type: 'collected', deliveries: log.length, incarnations: rows, unexpectedCloses, connectFailures });
      return;
    }
    case 'close':
      for (const { ws } of live.values()) ws.terminate();
      live.clear();
      await sleep(100);
      process.send({ type: 'closed' });
      process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
