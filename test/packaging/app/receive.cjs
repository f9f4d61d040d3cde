// The same through the installed client's CommonJS entry (require).
//   node receive.cjs CLIENT_URL ADMIN_URL TRANSPORT
const { connect, TOKEN_EXPIRED_CLOSE_CODE } = require('@tidings/client');

async function main() {
  const [clientUrl, adminUrl, transport] = process.argv.slice(2);
  const PHID = 'PHID-USER-packaged-cjs';
  const client = connect(clientUrl, { transport, instance: 'acme', reconnect: false });
  const received = new Promise((resolve) => client.on('message', (message, position) => resolve({ message, position })));
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no message within 10 s')), 10_000).unref());
  await Promise.race([client.subscribe([PHID]), timeout]);
  const res = await fetch(`${adminUrl}/?instance=acme`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'notification', key: `packaged-cjs-${transport}`, subscribers: [PHID] }),
  });
  const { message, position } = await Promise.race([received, timeout]);
  console.log(JSON.stringify({ publish: res.status, message, position, url: client.url, status: client.status, closeCode: TOKEN_EXPIRED_CLOSE_CODE }));
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
