/**
 * README.md stays true to the code: its configuration reference names every setting the
 * config schema has, with its environment variable and its default.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ENV_SETTINGS, defaultOf } from '@tidings/protocol';

const readme = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');

/** The README's table row for a setting: `| \`section.key\` | \`ENV\` | default | ... |`. */
function rowOf(path: string): string | undefined {
  return readme.split('\n').find((line) => line.startsWith(`| \`${path}\` |`));
}

describe('README configuration reference', () => {
  it.each(ENV_SETTINGS.map(({ env, path }) => [path.join('.'), env]))('documents %s as %s with its default', (path, env) => {
    const row = rowOf(path);
    expect(row).toBeDefined();
    expect(row).toContain(`\`${env}\``);
    const value = defaultOf(path.split('.'));
    const shown = value === '' ? '""' : Array.isArray(value) ? JSON.stringify(value) : String(value);
    expect(row!.split('|')[3]).toContain(shown);
  });

  it('documents the two commands of the quick start', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
  });
});
