// Builds the HAProxy configuration that puts Tidings gateways behind one address: the client
// port (WebSockets and Socket.IO, long-lived) and the admin port (publishes from Phorge),
// both health-checked against each gateway's GET /readyz on its admin port, so a draining
// node or one whose bus stopped delivering gets no new traffic. Both frontends add
// X-Forwarded-For, so gateways that trust this proxy (`limits.trustProxy`) see each client's
// and publisher's own address for `limits.maxConnectionsPerIp` and the publish rate limit.
// Used by tools/local-cluster.mjs, test/ops/rolling.spec.ts, and (with Docker names and
// resolvers) to write deploy/haproxy.cfg for docker-compose.yml. CommonJS so that .mjs tools
// and ts-jest tests can both load it.
'use strict';

/**
 * @typedef {object} GatewayBackend
 * @property {string} name       server name in HAProxy (gw1, ...)
 * @property {string} host       address or DNS name
 * @property {number} clientPort the gateway's client port
 * @property {number} adminPort  the gateway's admin port (also where /readyz is)
 *
 * @typedef {object} HaproxyOptions
 * @property {GatewayBackend[]} gateways
 * @property {string} clientBind  e.g. "127.0.0.1:22280" or "*:22280"
 * @property {string} adminBind   e.g. "127.0.0.1:22281"
 * @property {string} [statsBind] the HAProxy stats page (CSV at /;csv); default none
 * @property {number} [checkIntervalMs=1000] health check interval; fall 2 / rise 2
 * @property {string} [resolver] a DNS server "ip:port" (Docker: "127.0.0.11:53") so names are
 *   re-resolved and HAProxy starts before the gateways exist; default: resolve at start only
 * @property {boolean} [logStdout=false] log requests to stdout (containers)
 * @property {number} [maxconn] connections HAProxy accepts at once; default: what the
 *   process's file descriptor limit allows (HAProxy refuses to start above it)
 * @property {string} [header] a comment put at the top
 * @property {boolean} [failOpen=true] list every gateway again as an unchecked backup server,
 *   used only when no gateway is ready: if Redis fails for the whole cluster, nodes still
 *   serve their own sockets and the Aphlict relay rather than HAProxy answering 503 to all
 */

/** @param {HaproxyOptions} o */
function haproxyConfig(o) {
  const inter = o.checkIntervalMs ?? 1000;
  const failOpen = o.failOpen ?? true;
  const backups = (port) =>
    failOpen ? ['    option allbackups', ...o.gateways.map((g) => `    server ${g.name}-open ${g.host}:${port(g)} backup`)] : [];
  const lines = [];
  const add = (...l) => lines.push(...l);
  if (o.header) add(...o.header.split('\n').map((l) => `# ${l}`.trimEnd()), '');
  add(
    'global',
    ...(o.maxconn ? [`    maxconn ${o.maxconn}`] : []),
    ...(o.logStdout ? ['    log stdout format raw local0 info'] : []),
    '',
    'defaults',
    '    mode http',
    ...(o.logStdout ? ['    log global', '    option httplog', '    option dontlognull'] : []),
    '    timeout connect 2s',
    '    timeout client 60s',
    '    timeout server 60s',
    // A WebSocket is a tunnel once upgraded; browsers ping every 15 s, idle ones are cut after 1 h.
    '    timeout tunnel 1h',
    '    timeout client-fin 5s',
    '    timeout http-request 10s',
    // A connection refused by a gateway that is stopping or gone is retried on another one.
    '    retries 3',
    '    option redispatch 1',
    `    default-server inter ${inter}ms fastinter ${Math.max(100, Math.floor(inter / 2))}ms downinter ${inter}ms fall 2 rise 2${
      o.resolver ? ' resolvers dns init-addr last,libc,none' : ''
    }`,
    '',
  );
  if (o.resolver) {
    add('resolvers dns', `    nameserver dns1 ${o.resolver}`, '    hold valid 5s', '    accepted_payload_size 8192', '');
  }
  add(
    'frontend tidings_clients',
    `    bind ${o.clientBind}`,
    '    option forwardfor',
    '    default_backend tidings_clients',
    '',
    'backend tidings_clients',
    // Long-lived sockets: send each new one to the node with the fewest.
    '    balance leastconn',
    '    option httpchk',
    '    http-check send meth GET uri /readyz',
    '    http-check expect status 200',
    ...o.gateways.map((g) => `    server ${g.name} ${g.host}:${g.clientPort} check port ${g.adminPort}`),
    ...backups((g) => g.clientPort),
    '',
    'frontend tidings_admin',
    `    bind ${o.adminBind}`,
    '    option forwardfor',
    '    default_backend tidings_admin',
    '',
    'backend tidings_admin',
    '    balance roundrobin',
    '    option httpchk',
    '    http-check send meth GET uri /readyz',
    '    http-check expect status 200',
    ...o.gateways.map((g) => `    server ${g.name} ${g.host}:${g.adminPort} check`),
    ...backups((g) => g.adminPort),
    '',
  );
  if (o.statsBind) {
    add('frontend stats', `    bind ${o.statsBind}`, '    stats enable', '    stats uri /', '    stats refresh 5s', '');
  }
  return lines.join('\n');
}

/** The docker-compose.yml topology: gateway1..3 on the default ports, HAProxy on 22280/22281. */
const COMPOSE_GATEWAYS = [1, 2, 3].map((i) => ({ name: `gateway${i}`, host: `gateway${i}`, clientPort: 22280, adminPort: 22281 }));

function composeHaproxyConfig() {
  return haproxyConfig({
    header:
      'deploy/haproxy.cfg: HAProxy in front of the docker-compose.yml gateways.\n' +
      'Generated by `node deploy/haproxy-config.cjs > deploy/haproxy.cfg`; test/ops/compose.spec.ts checks it is current.',
    gateways: COMPOSE_GATEWAYS,
    clientBind: '*:22280',
    adminBind: '*:22281',
    statsBind: '*:8404',
    resolver: '127.0.0.11:53',
    logStdout: true,
    maxconn: 50000,
  });
}

module.exports = { haproxyConfig, composeHaproxyConfig, COMPOSE_GATEWAYS };

if (require.main === module) process.stdout.write(composeHaproxyConfig());
