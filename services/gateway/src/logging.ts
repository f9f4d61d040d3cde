/**
 * Logs: JSON lines (pino) to stdout and appended to each Aphlict `logs[].path`; with
 * --debug, stdout is human-readable and the level is debug. SIGHUP reopens the files
 * (logrotate moves them away first).
 */
import pino, { type DestinationStream, type Level } from 'pino';
import { Writable } from 'node:stream';
import type { Logger } from '@tidings/protocol';

export interface LoggingOptions {
  level: Level;
  files: string[];
  /** Human-readable console output instead of JSON. */
  pretty: boolean;
  /** Where console lines go; stdout by default. */
  console?: NodeJS.WritableStream;
}

export interface Logging {
  logger: Logger & pino.Logger;
  /** Reopens the log files (SIGHUP). */
  reopen(): void;
  /** Flushes and closes the files. */
  close(): void;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One readable line per record: `[time] LEVEL msg key=value ...`. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        const { time, level, msg, pid: _pid, hostname: _host, ...rest } = JSON.parse(chunk.toString());
        const extras = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        out.write(`[${new Date(time).toISOString()}] ${LEVEL_NAMES[level] ?? level} ${msg ?? ''}${extras ? ' ' + extras : ''}\n`);
      } catch {
        out.write(chunk);
      }
      done();
    },
  });
}

export function createLogging(options: LoggingOptions): Logging {
  const files = options.files.map((path) => pino.destination({ dest: path, append: true, mkdir: true, sync: false }));
  const consoleOut = options.console ?? process.stdout;
  const streams: pino.StreamEntry[] = [
    { level: options.level, stream: options.pretty ? prettyStream(consoleOut) : (consoleOut as DestinationStream) },
    ...files.map((stream) => ({ level: options.level, stream })),
  ];
  const logger = pino(
    { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.epochTime },
    pino.multistream(streams),
  );
  return {
    logger,
    reopen() {
      for (const f of files) f.reopen();
    },
    close() {
      for (const f of files) {
        try {
          f.flushSync();
        } catch {
          // not yet open or already closed
        }
        f.end();
      }
    },
  };
}
