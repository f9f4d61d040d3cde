/**
 * docker-compose.yml, the Dockerfile and deploy/haproxy.cfg, checked without a Docker engine:
 * the compose file parsed with `yaml`, its settings resolved by the gateway's own config
 * code, the HAProxy file compared with its generator and validated by `haproxy -c`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { createAddressMatcher, createClientAddressResolver } from '@tidings/auth';
import { ENV_SETTINGS, resolveConfig } from '@tidings/protocol';

const root = resolve(__dirname, '../..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { composeHaproxyConfig } = require(join(root, 'deploy/haproxy-config.cjs')) as { composeHaproxyConfig: () => string };

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; retries?: number };
  volumes?: string[];
  stop_grace_period?: string;
  networks?: Record<string, { ipv4_address?: string } | null> | string[];
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } }>;
};
const services = compose.services;
const gateways = ['gateway1', 'gateway2', 'gateway3'];
const haproxyCfg = readFileSync(join(root, 'deploy/haproxy.cfg'), 'utf8');

/** "127.0.0.1:22291:22281" -> {hostIp, host, container} */
function port(spec: string): { hostIp: string | null; host: number; container: number } {
  const parts = spec.split(':');
  if (parts.length === 3) return { hostIp: parts[0], host: Number(parts[1]), container: Number(parts[2]) };
  return { hostIp: null, host: Number(parts[0]), container: Number(parts[1]) };
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`unparsed duration ${duration}`);
  return Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1);
}

/** The sections of an HAProxy config: "backend tidings_clients" -> its lines. */
function sections(cfg: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const raw of cfg.split('\n')) {
    const line = raw.replace(/#.*/, '').trimEnd();
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) out.set(line.trim(), (current = []));
    else current?.push(line.trim());
  }
  return out;
}

describe('docker-compose.yml', () => {
  it('compose - one official Redis image, three gateways built from the Dockerfile, and HAProxy', () => {
    expect(Object.keys(services).sort()).toEqual(['gateway1', 'gateway2', 'gateway3', 'haproxy', 'redis']);
    // Official images: no registry host or namespace.
    expect(services.redis.image).toMatch(/^redis:[\w.-]+$/);
    expect(services.haproxy.image).toMatch(/^haproxy:[\w.-]+$/);
    for (const name of gateways) {
      const build = services[name].build as { context: string; dockerfile: string };
      expect(build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
      expect(existsSync(join(root, build.context, build.dockerfile))).toBe(true);
    }
  });

  it('compose - gateway settings are ones the gateway reads, and they configure Redis and reachable servers', () => {
    const known = new Set([...ENV_SETTINGS.map((s) => s.env), 'TIDINGS_CLIENT_PORT', 'TIDINGS_CLIENT_LISTEN', 'TIDINGS_ADMIN_PORT', 'TIDINGS_ADMIN_LISTEN']);
    for (const name of gateways) {
      const env = services[name].environment!;
      for (const key of Object.keys(env)) expect({ service: name, key, known: known.has(key) }).toEqual({ service: name, key, known: true });
      const config = resolveConfig(undefined, env);
      expect(config.redis.url).toBe('redis://redis:6379/0');
      expect(new URL(config.redis.url).hostname).toBe('redis');
      expect(config.servers).toEqual([
        { type: 'client', port: 22280, listen: '0.0.0.0' },
        { type: 'admin', port: 22281, listen: '0.0.0.0' },
      ]);
      // Docker waits stop_grace_period before SIGKILL: the drain must fit in it.
      expect(seconds(services[name].stop_grace_period!)).toBeGreaterThan(config.shutdown.drainMs / 1000 + 5);
    }
  });

  it('compose - health checks: Redis by ping, gateways by their admin readiness, and start order waits for them', () => {
    expect(services.redis.healthcheck!.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const name of gateways) {
      const test = services[name].healthcheck!.test.join(' ');
      expect(test).toMatch(/^CMD node -e /);
      expect(test).toContain('http://127.0.0.1:22281/readyz');
      expect(services[name].depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    }
    expect(services.haproxy.depends_on).toEqual(Object.fromEntries(gateways.map((g) => [g, { condition: 'service_healthy' }])));
  });

  it('compose - ports: clients public on 22280, admin ports only on 127.0.0.1, no host port used twice', () => {
    const hp = services.haproxy.ports!.map(port);
    expect(hp).toContainEqual({ hostIp: null, host: 22280, container: 22280 });
    expect(hp).toContainEqual({ hostIp: '127.0.0.1', host: 22281, container: 22281 });
    const all = [...hp];
    for (const name of gateways) {
      const ports = services[name].ports!.map(port);
      expect(ports).toHaveLength(1);
      expect(ports[0]).toMatchObject({ hostIp: '127.0.0.1', container: 22281 });
      all.push(...ports);
    }
    expect(new Set(all.map((p) => p.host)).size).toBe(all.length);
    for (const p of all) if (p.container === 22281 || p.container === 8404) expect(p.hostIp).toBe('127.0.0.1');
  });

  it('compose - HAProxy mounts deploy/haproxy.cfg, whose backends are the compose gateways checked on /readyz', () => {
    expect(services.haproxy.volumes).toContain('./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    const s = sections(haproxyCfg);
    const clients = s.get('backend tidings_clients')!;
    const admin = s.get('backend tidings_admin')!;
    for (const backend of [clients, admin]) {
      expect(backend).toContain('option httpchk');
      expect(backend).toContain('http-check send meth GET uri /readyz');
      expect(backend).toContain('http-check expect status 200');
    }
    expect(clients).toContain('balance leastconn');
    const servers = (lines: string[]) => lines.filter((l) => l.startsWith('server ')).map((l) => l.split(/\s+/));
    // Checked servers, then the same gateways as unchecked backups (fail open when none is ready).
    expect(servers(clients).map((w) => [w[2], w.slice(3).join(' ')])).toEqual([
      ...gateways.map((g) => [`${g}:22280`, 'check port 22281']),
      ...gateways.map((g) => [`${g}:22280`, 'backup']),
    ]);
    expect(servers(admin).map((w) => [w[2], w.slice(3).join(' ')])).toEqual([
      ...gateways.map((g) => [`${g}:22281`, 'check']),
      ...gateways.map((g) => [`${g}:22281`, 'backup']),
    ]);
    expect(clients).toContain('option allbackups');
    // The frontends bind the container ports compose publishes.
    const published = services.haproxy.ports!.map((p) => port(p).container);
    for (const [frontend, portNumber] of [['frontend tidings_clients', 22280], ['frontend tidings_admin', 22281], ['frontend stats', 8404]] as const) {
      expect(s.get(frontend)).toContain(`bind *:${portNumber}`);
      expect(published).toContain(portNumber);
    }
    // WebSockets live long: the tunnel timeout covers the browser's 15 s pings many times over.
    expect(s.get('defaults')).toContain('timeout tunnel 1h');
    // Docker's DNS, so HAProxy starts before the gateways resolve and follows their restarts.
    expect(s.get('resolvers dns')).toContain('nameserver dns1 127.0.0.11:53');
  });

  it('compose - both HAProxy frontends add X-Forwarded-For, and the gateways trust exactly HAProxy\'s fixed address for it', () => {
    const s = sections(haproxyCfg);
    for (const frontend of ['frontend tidings_clients', 'frontend tidings_admin']) expect(s.get(frontend)).toContain('option forwardfor');

    // HAProxy has a fixed address in the subnet of the network every service is on (the default one).
    const subnet = compose.networks?.default?.ipam?.config?.[0]?.subnet;
    expect(subnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    const haproxyAddress = (services.haproxy.networks as Record<string, { ipv4_address?: string }>).default.ipv4_address!;
    expect(createAddressMatcher([subnet!]).matches(haproxyAddress)).toBe(true);
    for (const name of ['redis', ...gateways]) expect(services[name].networks).toBeUndefined(); // the default network

    for (const name of gateways) {
      const config = resolveConfig(undefined, services[name].environment!);
      expect(config.limits.trustProxy).toEqual([haproxyAddress]);
      // What a gateway makes of a connection: from HAProxy, the address HAProxy appended;
      // from anything else on the network (another container), its own address.
      const resolver = createClientAddressResolver(config.limits.trustProxy);
      expect(resolver.resolve(haproxyAddress, '203.0.113.9, 198.51.100.7')).toBe('198.51.100.7');
      const neighbour = subnet!.replace(/\d+\/\d+$/, '77');
      expect(resolver.resolve(neighbour, '198.51.100.7')).toBe(neighbour);
    }
  });

  it('compose - deploy/haproxy.cfg is what deploy/haproxy-config.cjs generates, and haproxy -c accepts it', () => {
    expect(haproxyCfg).toBe(composeHaproxyConfig());
    // Docker's DNS (127.0.0.11) and the service names only exist inside compose; check the
    // same file with local stand-ins.
    const local = haproxyCfg.replace('127.0.0.11:53', '127.0.0.1:53').replace(/gateway\d:/g, '127.0.0.1:').replace('maxconn 50000', 'maxconn 1000');
    const file = join(mkdtempSync(join(tmpdir(), 'tidings-haproxy-')), 'haproxy.cfg');
    writeFileSync(file, local);
    const out = execFileSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(/Configuration file is valid/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages = lines.reduce<string[][]>((acc, l) => {
    if (/^FROM /i.test(l)) acc.push([]);
    acc[acc.length - 1]?.push(l);
    return acc;
  }, []);

  it('dockerfile - multi-stage, the runtime stage copies from the build stage and runs as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0][0]).toMatch(/^FROM node:\S+ AS build$/i);
    const runtime = stages[stages.length - 1];
    expect(runtime.some((l) => /^COPY --from=build /.test(l))).toBe(true);
    const user = runtime.filter((l) => l.startsWith('USER ')).pop();
    expect(user).toBeDefined();
    expect(user!.split(/\s+/)[1]).not.toMatch(/^(root|0)(:|$)/);
    // Dev dependencies stay in the build stage.
    expect(stages[0].join(' ')).toContain('npm prune --omit=dev');
  });

  it('dockerfile - HEALTHCHECK on the admin port, Aphlict ports exposed, the gateway as entrypoint', () => {
    const runtime = stages[stages.length - 1];
    const health = runtime.find((l) => l.startsWith('HEALTHCHECK '));
    expect(health).toMatch(/\/healthz|\/readyz/);
    expect(health).toContain('22281');
    expect(runtime).toContain('EXPOSE 22280 22281');
    expect(runtime).toContain('ENTRYPOINT ["node", "services/gateway/dist/main.js"]');
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8');
    expect(ignore).toMatch(/^\*\*\/node_modules$/m);
    expect(ignore).toMatch(/^\*\*\/dist$/m);
  });
});
