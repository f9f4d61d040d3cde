/**
 * `tidings [--config=FILE] [--test=true] [--debug=true]`: the gateway process, started
 * from an unchanged Aphlict config file, with Aphlict's defaults when none is given.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, checkTlsFiles, loadConfig } from './config';
import { closeLogFiles, createLogging, openLogFiles, type OpenedLogFile } from './logging';
import { Gateway } from './gateway';
import { VERSION } from './version';
import type { TidingsConfig } from '@tidings/protocol';
import { createCollaborators } from './wiring';
import { createAuthCollaborators, type AuthCollaborators } from './wiring-auth';

export interface ServeArgs {
  config?: string;
  test: boolean;
  debug: boolean;
}

export async function serve(args: ServeArgs): Promise<void> {
  let config;
  let logFiles: OpenedLogFile[];
  let auth: AuthCollaborators;
  try {
    config = loadConfig(args.config);
    checkTlsFiles(config);
    // Opened as the start opens them, so --test=true finds a path the process cannot write.
    logFiles = openLogFiles(config.logs.map((l) => l.path));
    // Reads and checks the client token key file, so --test=true catches an unusable one.
    auth = createAuthCollaborators(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tidings: bad configuration: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (args.test) {
    closeLogFiles(logFiles);
    process.stdout.write(`tidings: configuration ${args.config ? `"${args.config}" ` : ''}OK\n`);
    process.exit(0);
  }

  const logging = createLogging({
    level: args.debug ? 'debug' : config.log.level,
    files: logFiles,
    // Readable lines on a terminal (npm start), JSON lines for anything that parses them.
    pretty: args.debug || process.stdout.isTTY === true,
  });
  const { logger } = logging;
  let gatewayRef: Gateway | undefined;
  process.on('SIGHUP', () => {
    logging.reopen();
    logger.info('log files reopened (SIGHUP)');
  });
  // Phorge's `bin/aphlict start` writes its overseer's PID (our parent) to the same file and
  // stops the overseer through it: then the file is the launcher's, not ours.
  const pidfile = config.pidfile && !isHeldByParent(config.pidfile) ? config.pidfile : null;
  const removePidfile = () => {
    if (pidfile) rmSync(pidfile, { force: true });
  };
  // Writes out the log files (bounded in time) before exiting.
  const exit = (code: number): void => {
    void logging.close().finally(() => process.exit(code));
  };
  // A rejected promise nobody handled is a defect, but one confined to the work that made
  // it (every socket and request handler contains its own failures): log and count it, and
  // keep serving everyone else. A synchronous uncaught exception below may have left shared
  // state half-changed, so that one still ends the process.
  process.on('unhandledRejection', (reason) => {
    const err = reason instanceof Error ? reason : new Error(String(reason));
    gatewayRef?.node.counters.internalError('unhandled_rejection');
    logger.error({ err: err.message, stack: err.stack }, 'unhandled promise rejection (contained)');
  });
  process.on('uncaughtException', (err) => {
    // The pidfile goes first and stderr hears of it too: this handler must not fail before either.
    removePidfile();
    process.stderr.write(`tidings: uncaught exception: ${err.stack ?? err.message}\n`);
    try {
      logger.fatal({ err: err.message, stack: err.stack }, 'uncaught exception');
    } catch {
      // Already on stderr; an exception thrown from this handler would end the process with code 7.
    }
    exit(1);
  });

  // Handlers from the start: without one, a signal that comes before start() returns kills
  // the process with the default action (exit by signal, pidfile left behind). While
  // starting (Redis may still be unreachable) there is nothing to drain: exit at once.
  let started = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) return stop(signal);
    logger.info({ signal }, 'shutting down while starting');
    removePidfile();
    exit(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let gateway: Gateway;
  try {
    gateway = new Gateway({ config, logger, auth, ...createCollaborators(config, logger) });
    gatewayRef = gateway;
    // Before start(): whoever waits for "gateway started" finds the pidfile already there.
    if (pidfile) {
      mkdirSync(dirname(pidfile), { recursive: true });
      writeFileSync(pidfile, `${process.pid}\n`);
    }
    await gateway.start();
    if (process.stdout.isTTY) process.stdout.write(banner(gateway, config));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.fatal({ err: e.message, code: e.code }, 'gateway failed to start');
    process.stderr.write(`tidings: cannot start: ${e.message}\n`);
    removePidfile();
    exit(1);
    return;
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C means "now"; a repeated SIGTERM (process managers send several) waits for the drain.
      if (signal === 'SIGINT') {
        logger.warn({ signal }, 'second signal: exiting without finishing the drain');
        removePidfile();
        exit(1);
        return;
      }
      logger.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    // SIGTERM drains over the configured window; SIGINT (Ctrl-C) closes at once.
    const drainMs = signal === 'SIGTERM' ? config.shutdown.drainMs : 0;
    logger.info({ signal, drainMs }, 'shutting down');
    const hardStop = setTimeout(() => {
      logger.error({ signal }, 'shutdown took too long; exiting');
      removePidfile();
      process.exit(1);
    }, drainMs + 10_000);
    hardStop.unref();
    gateway
      .close(drainMs)
      .catch((err: Error) => logger.error({ err: err.message }, 'error while closing'))
      .finally(() => {
        removePidfile();
        exit(0);
      });
  };
  started = true;
}

function isHeldByParent(pidfile: string): boolean {
  try {
    return Number(readFileSync(pidfile, 'utf8').trim()) === process.ppid;
  } catch {
    return false;
  }
}

/** What a person starting a gateway on a terminal wants first: where to connect. */
function banner(gateway: Gateway, config: TidingsConfig): string {
  const first = (type: 'client' | 'admin') => gateway.servers.find((s) => s.type === type)?.url ?? '(none)';
  const admin = first('admin');
  const lines = [
    '',
    `  Tidings ${VERSION} is running (fingerprint ${gateway.node.fingerprint})`,
    `  clients  ${first('client')}${config.socketio.enabled ? `   (Socket.IO at ${config.socketio.path})` : ''}`,
    `  admin    ${admin}   (POST / to publish, /status/, /metrics)`,
    `  console  ${admin}/console/`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}
