/**
 * Socket.IO clients for the benchmark. socket.io-client is used when it is installed; if
 * not, a minimal Engine.IO 4 / Socket.IO 5 client over a plain `ws` WebSocket (websocket
 * transport only: open, CONNECT with auth, EVENT with ack, ping/pong), which is all the
 * gateway's contract needs and is lighter on the shared load-generator cores.
 */
import WebSocket from 'ws';

let library; // undefined: not looked up yet; null: not installed
async function loadLibrary() {
  if (library === undefined) {
    try {
      library = (await import('socket.io-client')).io;
    } catch {
      library = null;
    }
  }
  return library;
}

/** Which client implementation a run uses ('socket.io-client' or 'minimal'). */
export async function socketIoClientKind(prefer = 'auto') {
  if (prefer === 'minimal') return 'minimal';
  return (await loadLibrary()) ? 'socket.io-client' : 'minimal';
}

/**
 * Connects, subscribes (waiting for the `{ok: true}` ack) and calls onMessage with each
 * delivered notification. spec: {baseUrl, path, instance, phids, client}. Resolves with
 * {close(), subscribe(phids)}; subscribe resolves once the gateway acks `{ok: true}`.
 */
export async function connectSocketIo(spec, onMessage, timeoutMs) {
  const kind = await socketIoClientKind(spec.client);
  return kind === 'socket.io-client' ? connectWithLibrary(spec, onMessage, timeoutMs) : connectMinimal(spec, onMessage, timeoutMs);
}

function connectWithLibrary(spec, onMessage, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = library(spec.baseUrl, {
      path: spec.path,
      transports: ['websocket'],
      auth: { instance: spec.instance },
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
    });
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error('socket.io: no subscribe ack within timeout'));
    }, timeoutMs);
    socket.on('message', onMessage);
    socket.on('connect_error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      socket.emit('subscribe', spec.phids, (ack) => {
        clearTimeout(timer);
        if (ack && ack.ok) resolve({ close: () => socket.disconnect(), subscribe: (phids) => subscribeWithLibrary(socket, phids, timeoutMs) });
        else reject(new Error(`socket.io: subscribe refused: ${JSON.stringify(ack)}`));
      });
    });
  });
}

function subscribeWithLibrary(socket, phids, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket.io: no subscribe ack within timeout')), timeoutMs);
    socket.emit('subscribe', phids, (ack) => {
      clearTimeout(timer);
      if (ack && ack.ok) resolve();
      else reject(new Error(`socket.io: subscribe refused: ${JSON.stringify(ack)}`));
    });
  });
}

function connectMinimal(spec, onMessage, timeoutMs) {
  return new Promise((resolve, reject) => {
    const url = `${spec.baseUrl}${spec.path}?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('socket.io (minimal): no subscribe ack within timeout'));
    }, timeoutMs);
    const fail = (err) => {
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('error', fail);
    // Later subscribes (ack ids 2, 3, ...) wait here for their acks.
    let nextAck = 2;
    const pending = new Map();
    const subscribe = (phids) =>
      new Promise((res, rej) => {
        const id = nextAck++;
        const t = setTimeout(() => (pending.delete(id), rej(new Error('socket.io (minimal): no subscribe ack within timeout'))), timeoutMs);
        pending.set(id, (ack) => {
          clearTimeout(t);
          if (ack && ack.ok) res();
          else rej(new Error(`socket.io (minimal): subscribe refused: ${JSON.stringify(ack)}`));
        });
        ws.send(`42${id}${JSON.stringify(['subscribe', phids])}`);
      });
    ws.on('message', (data) => {
      const text = data.toString();
      const type = text[0];
      if (type === '0') {
        // Engine.IO OPEN: connect to the main namespace with auth.
        ws.send(`40${JSON.stringify({ instance: spec.instance })}`);
      } else if (type === '2') {
        ws.send('3'); // Engine.IO PING -> PONG
      } else if (type === '4') {
        const packet = text[1];
        if (packet === '0') {
          ws.send(`421${JSON.stringify(['subscribe', spec.phids])}`);
        } else if (packet === '2') {
          const [event, payload] = JSON.parse(text.slice(2));
          if (event === 'message') onMessage(payload);
        } else if (packet === '3' && text.startsWith('431[')) {
          const [ack] = JSON.parse(text.slice(3));
          clearTimeout(timer);
          if (ack && ack.ok) resolve({ close: () => ws.terminate(), subscribe });
          else fail(new Error(`socket.io (minimal): subscribe refused: ${JSON.stringify(ack)}`));
        } else if (packet === '3') {
          const m = /^43(\d+)(.*)$/s.exec(text);
          const settle = m && pending.get(Number(m[1]));
          if (settle) {
            pending.delete(Number(m[1]));
            settle(JSON.parse(m[2])[0]);
          }
        } else if (packet === '4') {
          fail(new Error(`socket.io (minimal): connect refused: ${text.slice(2)}`));
        }
      }
    });
  });
}
