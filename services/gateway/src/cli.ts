/**
 * The `tidings` command line:
 * - `tidings [--config=FILE] [--test=true] [--debug=true]` runs the gateway (as Aphlict's
 *   `node aphlict_server.js` does);
 * - `tidings notify ...` and `tidings status ...` talk to a running node's admin port;
 * - `tidings token ...` prints a signed connection token for the client port.
 * Exit codes: 0 success, 1 the server failed or was unreachable, 2 bad arguments.
 */
import { Command, CommanderError, Option } from 'commander';
import { serve } from './serve';
import { VERSION } from './version';
import { CommandError } from './commands/admin-request';
import { notifyCommand, type NotifyArgs } from './commands/notify';
import { statusCommand, type StatusArgs } from './commands/status';
import { tokenCommand, type TokenArgs } from './commands/token';

/** Aphlict passes booleans as `--test=true`; a bare flag means true. */
function flag(value: string | boolean | undefined): boolean {
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  return !/^(0|false|no|off)$/i.test(value);
}

/** Runs a command, turning its CommandError into a one-line message and an exit code. */
function run<A>(command: (args: A) => Promise<void>): (args: A) => Promise<void> {
  return async (args) => {
    try {
      await command(args);
    } catch (err) {
      if (err instanceof CommandError) {
        process.stderr.write(`tidings: ${err.message}\n`);
        process.exit(err.exitCode);
      }
      throw err;
    }
  };
}

/** `--token`, also read from TIDINGS_TOKEN (which other users cannot read in the process list). */
function tokenOption(): Option {
  return new Option('--token <token>', 'admin token, sent as "Authorization: Bearer TOKEN" (prefer the environment variable)').env('TIDINGS_TOKEN');
}

/** Edit distance, for "did you mean" on a mistyped command. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** The message for a word where a command was expected, naming the word and the commands. */
function unknownCommand(word: string, commands: string[]): string {
  const near = commands.filter((c) => distance(word, c) <= Math.max(1, Math.floor(c.length / 3)) || (word.length >= 3 && c.startsWith(word)));
  const hint = near.length ? ` (did you mean ${near.map((c) => `'${c}'`).join(' or ')}?)` : '';
  return `unknown command '${word}'${hint}; the commands are ${commands.join(', ')}`;
}

export function createProgram(): Command {
  const program = new Command('tidings')
    .description("Tidings notification gateway: a drop-in replacement for Phorge's Aphlict server")
    .version(VERSION)
    // Commander's own usage errors (unknown option, missing value) exit 2, like ours.
    .exitOverride((err: CommanderError) => {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exit(ok ? 0 : 2);
    })
    .showHelpAfterError('(run with --help for usage)')
    // The first word that is not an option ends the server's options: everything after it
    // comes to the action below, so a mistyped command is named as such rather than its
    // options being reported as unknown server options.
    .enablePositionalOptions()
    .passThroughOptions()
    .allowExcessArguments()
    .option('--config <file>', 'Aphlict config file (aphlict.json) with optional Tidings keys')
    .option('--test [bool]', 'check the config file and exit 0, or 1 naming the bad key')
    .option('--debug [bool]', 'log readable lines to the console at debug level')
    .action(async (opts: { config?: string; test?: string | boolean; debug?: string | boolean }, command: Command) => {
      if (command.args.length > 0) {
        // `tidings help [command]`, as git and npm read it.
        if (command.args[0] === 'help') (program.commands.find((c) => c.name() === command.args[1]) ?? program).help();
        const commands = program.commands.map((c) => c.name());
        program.error(`error: ${unknownCommand(command.args[0], commands)}`, { exitCode: 2, code: 'tidings.unknownCommand' });
      }
      await serve({ config: opts.config, test: flag(opts.test), debug: flag(opts.debug) });
    });

  program
    .command('notify')
    .description("publish a message through a node's admin port (as Phorge does) and print the receipt")
    .requiredOption('--admin <url>', 'admin server, e.g. http://127.0.0.1:22281 (a path is kept as a prefix: http://host:22281/TOKEN)')
    .requiredOption('--subscribers <phids>', 'comma-separated PHIDs the message is for')
    .option('--instance <name>', 'instance (tenant); default "default"')
    .option('--type <type>', 'message type', 'notification')
    .option('--key <key>', 'message key (Phorge: the story key)')
    .option('--data <json>', 'JSON object whose fields are added to the message')
    .option('--timeout <ms>', 'how long to wait for the server', '5000')
    .option('--json', 'print the receipt and the message sent as JSON')
    .addOption(tokenOption())
    .action(run((opts: NotifyArgs) => notifyCommand(opts)));

  program
    .command('status')
    .description("print a node's /status/ and readiness readably")
    .requiredOption('--admin <url>', 'admin server, e.g. http://127.0.0.1:22281 (a path is kept as a prefix: http://host:22281/TOKEN)')
    .option('--instance <name>', 'instance (tenant); default "default"')
    .option('--json', 'print the raw /status/ object')
    .option('--timeout <ms>', 'how long to wait for the server', '5000')
    .addOption(tokenOption())
    .action(run((opts: StatusArgs) => statusCommand(opts)));

  program
    .command('token')
    .description('print an HS256 connection token for the client port (auth.clientTokens.hmacSecret)')
    .requiredOption('--secret-file <file>', 'file holding the HS256 secret (auth.clientTokens.hmacSecret)')
    .requiredOption('--phids <phids>', 'comma-separated PHIDs the connection may subscribe to; PREFIX* for a prefix, * for all')
    .requiredOption('--ttl <duration>', 'lifetime: 90, 45s, 30m, 1h or 7d')
    .option('--instance <name>', 'bind the token to one instance')
    .option('--sub <subject>', 'subject (logged by the server), e.g. the user PHID')
    .option('--issuer <iss>', 'iss claim (when auth.clientTokens.issuer is set)')
    .option('--audience <aud>', 'aud claim (when auth.clientTokens.audience is set)')
    .action(run((opts: TokenArgs) => tokenCommand(opts)));

  program.addHelpText(
    'after',
    `
Examples:
  tidings --config=/etc/aphlict.json            run a gateway from an Aphlict config
  tidings --config=/etc/aphlict.json --test=true check the config and exit
  tidings notify --admin http://127.0.0.1:22281 --subscribers PHID-USER-abc --key 123
  tidings status --admin http://127.0.0.1:22281 --instance acme
  TIDINGS_TOKEN=... tidings status --admin http://127.0.0.1:22281   with auth.adminTokens
  tidings token --secret-file /etc/tidings/hmac --phids PHID-USER-abc,PHID-PROJ-* --ttl 1h

Exit codes: 0 success, 1 the server failed or could not be reached, 2 bad arguments.`,
  );
  return program;
}
