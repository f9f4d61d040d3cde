/**
 * Logs: JSON lines (pino) to stdout and appended to each Aphlict `logs[].path`; with
 * --debug, stdout is human-readable and the level is debug. SIGHUP reopens the files
 * (logrotate moves them away first).
 *
 * The files are opened before the gateway starts (openLogFiles, which --test=true runs
 * too), so a path the process cannot write stops the start with the system's reason. A
 * destination that fails later (disk full, a reopen onto an unwritable path, stdout's
 * reader gone) never stops the process: the failure is reported once on stderr and through
 * the other destinations, and logging goes on without it.
 */
import pino, { type DestinationStream, type Level } from 'pino';
import SonicBoom from 'sonic-boom';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { ConfigError, type Logger } from '@tidings/protocol';

/** A `logs[].path` opened for appending. */
export interface OpenedLogFile {
  path: string;
  fd: number;
}

export interface LoggingOptions {
  level: Level;
  /** From openLogFiles; the logging owns them from here on. */
  files: OpenedLogFile[];
  /** Human-readable console output instead of JSON. */
  pretty: boolean;
  /** Where console lines go; stdout by default. */
  console?: NodeJS.WritableStream;
  /** Where a failing destination is reported; stderr by default. */
  stderr?: NodeJS.WritableStream;
}

export interface Logging {
  logger: Logger & pino.Logger;
  /** Reopens the log files (SIGHUP); a file that cannot be reopened is reported and keeps its old descriptor. */
  reopen(): void;
  /** Writes out what the files still hold and closes them; resolves within CLOSE_TIMEOUT_MS whatever the disk does. */
  close(): Promise<void>;
}

/**
 * Bytes a log file may hold unwritten while its writes fail (disk full): past it new lines
 * are dropped (and counted) rather than kept in memory.
 */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** close() gives the files this long to take their last lines: a stuck disk must not hold the exit. */
const CLOSE_TIMEOUT_MS = 2_000;

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

type LineSink = { write(line: string): unknown };
type ReportProblem = (message: string, err: NodeJS.ErrnoException, fields?: Record<string, unknown>) => void;

/** Opens a log file for appending as the gateway writes it, creating its directory if missing. */
export function openLogFile(path: string): number {
  try {
    return openSync(path, 'a');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a');
  }
}

/**
 * Opens every `logs[].path` (at start, and for --test=true). Throws a ConfigError naming
 * the key, the path and the system's reason (EACCES, EISDIR, ENOTDIR, ...), having closed
 * the files it had opened.
 */
export function openLogFiles(paths: string[]): OpenedLogFile[] {
  const opened: OpenedLogFile[] = [];
  paths.forEach((path, index) => {
    try {
      opened.push({ path, fd: openLogFile(path) });
    } catch (err) {
      closeLogFiles(opened);
      throw new ConfigError(`logs[${index}].path: cannot open "${path}" for appending: ${(err as Error).message}`);
    }
  });
  return opened;
}

export function closeLogFiles(files: OpenedLogFile[]): void {
  for (const { fd } of files) closeSync(fd);
}

/**
 * One log file. Writes never throw: a failed write is reported once per outage (the
 * pending lines are retried with the next line, up to MAX_PENDING_BYTES), and a failed
 * reopen keeps the descriptor it had.
 */
class LogFile {
  private stream: SonicBoom;
  /** The error the current outage began with, reported once; null while writes succeed. */
  private failing: NodeJS.ErrnoException | null = null;
  private dropped = 0;
  private closed = false;

  constructor(
    readonly path: string,
    fd: number,
    private readonly report: ReportProblem,
    private readonly recovered: (path: string, dropped: number) => void,
  ) {
    this.stream = this.attach(fd);
  }

  write(line: string): void {
    // A destroyed SonicBoom throws on write; a line logged while the process exits goes to the other destinations.
    if (!this.closed) this.stream.write(line);
  }

  reopen(): void {
    if (this.closed) return;
    let fd: number;
    try {
      fd = openLogFile(this.path);
    } catch (err) {
      this.report(`log file "${this.path}": cannot reopen it; still writing to the file opened before`, err as NodeJS.ErrnoException, {
        path: this.path,
      });
      return;
    }
    const old = this.stream;
    this.stream = this.attach(fd);
    this.failing = null;
    this.dropped = 0;
    void endStream(old);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return endStream(this.stream);
  }

  private attach(fd: number): SonicBoom {
    // Not pino.destination(): it flushes synchronously at exit, and sonic-boom's flushSync
    // retries a write that fails with anything but EAGAIN for ever (ENOSPC hangs the exit).
    const stream = new SonicBoom({ fd, sync: false, maxLength: MAX_PENDING_BYTES });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (stream !== this.stream || this.closed) return;
      if (this.failing) return;
      this.failing = err;
      this.report(`log file "${this.path}": cannot write to it; logging goes on to the other destinations`, err, { path: this.path });
    });
    stream.on('write', () => {
      if (stream !== this.stream || !this.failing) return;
      this.failing = null;
      this.recovered(this.path, this.dropped);
      this.dropped = 0;
    });
    stream.on('drop', () => {
      if (stream === this.stream) this.dropped++;
    });
    return stream;
  }
}

/** Writes out what a stream holds and closes its descriptor; after a failed write, drops the rest and closes. */
function endStream(stream: SonicBoom): Promise<void> {
  return new Promise<void>((resolve) => {
    stream.once('close', () => resolve());
    // sonic-boom has just finished the failed write, so no write is in flight on the descriptor destroy() closes.
    stream.on('error', () => stream.destroy());
    stream.end();
  });
}

/** A console stream that is dropped, reported once, when it fails (EPIPE: the reader of stdout went away). */
function guardConsole(out: NodeJS.WritableStream, report: ReportProblem): LineSink {
  let broken = false;
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (broken) return;
    broken = true;
    report('console output failed; logging goes on to the log files', err);
  });
  return {
    write(line: string) {
      if (!broken) out.write(line);
    },
  };
}

/** One readable line per record: `[time] LEVEL msg key=value ...`. */
function prettyStream(out: LineSink): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        const { time, level, msg, pid: _pid, hostname: _host, ...rest } = JSON.parse(chunk.toString());
        const extras = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        out.write(`[${new Date(time).toISOString()}] ${LEVEL_NAMES[level] ?? level} ${msg ?? ''}${extras ? ' ' + extras : ''}\n`);
      } catch {
        out.write(chunk.toString());
      }
      done();
    },
  });
}

export function createLogging(options: LoggingOptions): Logging {
  const stderr = options.stderr ?? process.stderr;
  // A report must not be what kills the process when stderr's reader is gone too.
  stderr.on('error', () => {});
  // The reports are made by the destinations' events, all after the logger below exists.
  const report: ReportProblem = (message, err, fields = {}) => {
    stderr.write(`tidings: ${message}: ${err.message}\n`);
    logger.error({ ...fields, err: err.message, code: err.code }, message);
  };
  const recovered = (path: string, dropped: number) => logger.warn({ path, dropped }, `log file "${path}": writing to it again`);
  const files = options.files.map(({ path, fd }) => new LogFile(path, fd, report, recovered));
  const consoleOut = guardConsole(options.console ?? process.stdout, report);
  const streams: pino.StreamEntry[] = [
    { level: options.level, stream: options.pretty ? prettyStream(consoleOut) : (consoleOut as DestinationStream) },
    ...files.map((file) => ({ level: options.level, stream: file as DestinationStream })),
  ];
  const logger = pino(
    { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.epochTime },
    pino.multistream(streams),
  );
  let closing: Promise<void> | undefined;
  return {
    logger,
    reopen() {
      for (const f of files) f.reopen();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        void Promise.all(files.map((f) => f.close())).then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}
