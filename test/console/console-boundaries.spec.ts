/**
 * The console page's module boundary is real (eslint.config.mjs, scope:console): it may
 * use the client library and protocol's types, and nothing of the gateway's side.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(__dirname, '../..');
const eslintBin = resolve(root, 'node_modules/eslint/bin/eslint.js');

/** The module-boundary errors ESLint reports for `code` linted as if it were `file`. */
function boundaryErrors(file: string, code: string): string[] {
  const run = spawnSync(process.execPath, [eslintBin, '--format', 'json', '--stdin', '--stdin-filename', file], {
    cwd: root,
    input: code,
    encoding: 'utf8',
    env: { ...process.env, NX_DAEMON: 'false' },
  });
  if (!run.stdout) throw new Error(`eslint produced no output: ${run.stderr}`);
  const [result] = JSON.parse(run.stdout) as { messages: { ruleId: string | null; message: string }[] }[];
  return result.messages.filter((m) => m.ruleId === '@nx/enforce-module-boundaries').map((m) => m.message);
}

const FILE = 'services/console/src/boundary-fixture.ts';

describe('console module boundary', () => {
  jest.setTimeout(60_000);

  it('allows the client library and protocol types', () => {
    expect(
      boundaryErrors(FILE, "import { connect } from '@tidings/client';\nimport type { ConsoleOverview } from '@tidings/protocol';\nexport const c = connect;\nexport type O = ConsoleOverview;\n"),
    ).toEqual([]);
  });

  it.each(['@tidings/hub', '@tidings/bus', '@tidings/auth', '@tidings/gateway'])('refuses %s', (name) => {
    expect(boundaryErrors(FILE, `import * as m from '${name}';\nexport const x = m;\n`).length).toBeGreaterThan(0);
  });
});
