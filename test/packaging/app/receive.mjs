// A user's script with the installed @tidings/client (ES module entry): connect, subscribe,
// publish through the admin port with fetch, receive. Prints one JSON line.
//   node receive.mjs CLIENT_URL ADMIN_URL TRANSPORT
import { connect } from '@tidings/client';

const [clientUrl, adminUrl, transport] = process.argv.slice(2);
const PHID = 'PHID-USER-packaged';
const client = connect(clientUrl, { transport, instance: 'acme', reconnect: false });
const received = new Promise((resolve) => client.on('message', (message, position) => resolve({ message, position })));
const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no message within 10 s')), 10_000).unref());

await Promise.race([client.subscribe([PHID]), timeout]); // resolves once the server holds it
const res = await fetch(`${adminUrl}/?instance=acme`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ type: 'notification', key: `packaged-${transport}`, subscribers: [PHID] }),
});
const { message, position } = await Promise.race([received, timeout]);
console.log(JSON.stringify({ publish: res.status, message, position, url: client.url, status: client.status }));
await client.close();
