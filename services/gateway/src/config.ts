/** Reads the config file and the environment once, into typed options. */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError, resolveConfig, type ServerConfig, type TidingsConfig } from '@tidings/protocol';

export { ConfigError, type TidingsConfig };

/** Loads `--config=PATH` (or Aphlict's defaults when absent) and TIDINGS_* variables. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): TidingsConfig {
  let file: unknown;
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file "${path}": ${(err as Error).message}`);
    }
    try {
      file = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`config file "${path}" is not JSON: ${(err as Error).message}`);
    }
  }
  return resolveConfig(file, env);
}

export interface TlsFiles {
  key: Buffer;
  cert: Buffer;
}

/** Reads a server's TLS files (cert followed by the chain, as Aphlict does), or null for plain HTTP. */
export function readTls(server: ServerConfig, index: number): TlsFiles | null {
  if (!server['ssl.key']) return null;
  const read = (key: 'ssl.key' | 'ssl.cert' | 'ssl.chain'): Buffer => {
    const file = server[key] as string;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`servers[${index}].${key}: cannot read "${file}": ${(err as Error).message}`);
    }
  };
  const key = read('ssl.key');
  let cert = read('ssl.cert');
  if (server['ssl.chain']) cert = Buffer.concat([cert, Buffer.from('\n'), read('ssl.chain')]);
  return { key, cert };
}

/**
 * Reads every server's TLS files and checks that each key and certificate form a usable
 * pair, so `--test=true` catches what would stop the servers from starting (as Aphlict's
 * --test reads the files too). Throws ConfigError naming the server.
 */
export function checkTlsFiles(config: TidingsConfig): void {
  config.servers.forEach((server, index) => {
    const tls = readTls(server, index);
    if (!tls) return;
    try {
      createSecureContext({ key: tls.key, cert: tls.cert });
    } catch (err) {
      throw new ConfigError(`servers[${index}]: ssl.key and ssl.cert are not a usable pair: ${(err as Error).message}`);
    }
  });
}
