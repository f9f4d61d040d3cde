/**
 * README.md stays true to the code: its configuration reference names every setting the
 * config schema has, with its environment variable and its default, cell for cell.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ENV_SETTINGS, defaultOf } from '@tidings/protocol';

const readme = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');

/** The cells of a markdown table row, trimmed; `\|` inside a cell is not a separator. */
function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

/** The body rows of every table whose header row has exactly these cells. */
function tableRows(markdown: string, header: string[]): string[][] {
  const lines = markdown.split('\n');
  const rows: string[][] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('|') || cellsOf(line).join('|') !== header.join('|')) return;
    for (let j = i + 2; j < lines.length && lines[j].startsWith('|'); j++) rows.push(cellsOf(lines[j]));
  });
  return rows;
}

/** How the README writes a default: numbers bare, strings and booleans as code, "" for the empty string. */
function shownDefault(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `\`${JSON.stringify(value)}\``;
  if (value === '') return '`""`';
  return `\`${String(value)}\``;
}

/** A default cell without its trailing note: `0 (no limit)` is `0`. */
const withoutNote = (cell: string) => cell.replace(/\s+\([^)]*\)$/, '');

const TIDINGS_HEADER = ['key', 'env', 'default', 'meaning'];

/** What is wrong with the README's row for one setting (nothing: []). */
function problemsOf(markdown: string, path: string, env: string, value: unknown): string[] {
  const rows = tableRows(markdown, TIDINGS_HEADER).filter((cells) => cells[0] === `\`${path}\``);
  if (rows.length !== 1) return [`${path}: ${rows.length} rows in the Tidings keys table, expected 1`];
  const [, envCell, defaultCell] = rows[0];
  const problems: string[] = [];
  if (envCell !== `\`${env}\``) problems.push(`${path}: env cell ${envCell}, expected \`${env}\``);
  if (withoutNote(defaultCell) !== shownDefault(value)) problems.push(`${path}: default cell ${defaultCell}, expected ${shownDefault(value)}`);
  return problems;
}

const defaultAt = (path: string): unknown => defaultOf(path.split('.'));

const SETTINGS = ENV_SETTINGS.map(({ env, path }) => [path.join('.'), env] as [string, string]);

describe('README configuration reference', () => {
  it('has the Tidings keys table, with one row per setting and no other', () => {
    const keys = tableRows(readme, TIDINGS_HEADER).map((cells) => cells[0]);
    expect(keys.sort()).toEqual(SETTINGS.map(([path]) => `\`${path}\``).sort());
  });

  it.each(SETTINGS)('documents %s as %s with its default', (path, env) => {
    expect(problemsOf(readme, path, env, defaultAt(path))).toEqual([]);
  });

  describe('positive controls: a README that is wrong is caught', () => {
    const path = 'redis.commandTimeoutMs';
    const env = 'TIDINGS_REDIS_COMMAND_TIMEOUT_MS';
    const row = (markdown: string) => markdown.split('\n').find((l) => l.startsWith(`| \`${path}\` |`))!;
    const edited = (from: string, to: string) => readme.replace(row(readme), row(readme).replace(from, to));

    it('the control starts from a row the check accepts', () => {
      expect(defaultAt(path)).toBe(2000);
      expect(row(readme)).toContain('| 2000 |');
      expect(problemsOf(readme, path, env, 2000)).toEqual([]);
    });

    it('a default that only contains the right one (20000 for 2000)', () => {
      const wrong = edited('| 2000 |', '| 20000 |');
      // The substring check this replaces passed on exactly this row.
      expect(row(wrong)).toContain('2000');
      expect(problemsOf(wrong, path, env, 2000)).toEqual([`${path}: default cell 20000, expected 2000`]);
    });

    it('a default moved into the meaning column', () => {
      const wrong = edited('| 2000 | longest wait', '| — | 2000 ms is the longest wait');
      expect(problemsOf(wrong, path, env, 2000)).toEqual([`${path}: default cell —, expected 2000`]);
    });

    it('a string default written without its quotes, and a wrong env name', () => {
      const prefix = readme.split('\n').find((l) => l.startsWith('| `redis.keyPrefix` |'))!;
      const wrong = readme.replace(prefix, prefix.replace('`tidings:`', 'tidings').replace('TIDINGS_REDIS_KEY_PREFIX', 'TIDINGS_REDIS_PREFIX'));
      expect(problemsOf(wrong, 'redis.keyPrefix', 'TIDINGS_REDIS_KEY_PREFIX', 'tidings:')).toEqual([
        'redis.keyPrefix: env cell `TIDINGS_REDIS_PREFIX`, expected `TIDINGS_REDIS_KEY_PREFIX`',
        'redis.keyPrefix: default cell tidings, expected `tidings:`',
      ]);
    });

    it('a missing row and a repeated row', () => {
      expect(problemsOf(readme.replace(`${row(readme)}\n`, ''), path, env, 2000)).toEqual([`${path}: 0 rows in the Tidings keys table, expected 1`]);
      expect(problemsOf(readme.replace(row(readme), `${row(readme)}\n${row(readme)}`), path, env, 2000)).toEqual([
        `${path}: 2 rows in the Tidings keys table, expected 1`,
      ]);
    });
  });

  it('documents the two commands of the quick start', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
  });
});
