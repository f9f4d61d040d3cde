/** The `tidings` command line. */
import { Command } from 'commander';
import { serve } from './serve';
import { VERSION } from './version';

/** Aphlict passes booleans as `--test=true`; a bare flag means true. */
function flag(value: string | boolean | undefined): boolean {
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  return !/^(0|false|no|off)$/i.test(value);
}

export function createProgram(): Command {
  const program = new Command('tidings')
    .description('Tidings notification gateway: a drop-in replacement for Phorge\'s Aphlict server')
    .version(VERSION)
    .option('--config <file>', 'Aphlict config file (aphlict.json) with optional Tidings keys')
    .option('--test [bool]', 'check the config file and exit 0, or 1 naming the bad key')
    .option('--debug [bool]', 'log readable lines to the console at debug level')
    .action(async (opts: { config?: string; test?: string | boolean; debug?: string | boolean }) => {
      await serve({ config: opts.config, test: flag(opts.test), debug: flag(opts.debug) });
    });
  return program;
}
