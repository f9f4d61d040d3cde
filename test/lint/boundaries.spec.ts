/**
 * The module boundaries are real: ESLint's @nx/enforce-module-boundaries rejects an import
 * that points the wrong way (a lib importing the gateway, protocol importing a lib).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(__dirname, '../..');
const eslintBin = resolve(root, 'node_modules/eslint/bin/eslint.js');

/** Lints `code` as if it were `file`, with the project's own config, in a child process. */
async function lintAs(file: string, code: string): Promise<string[]> {
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

describe('module boundaries', () => {
  jest.setTimeout(60_000);

  it('refuse a library that imports the gateway', async () => {
    const errors = await lintAs('libs/hub/src/boundary-fixture.ts', "import { Gateway } from '@tidings/gateway';\nexport const g = Gateway;\n");
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(/scope:hub|tags|not allowed|Circular|dependency/i);
  });

  it('refuse protocol importing the hub', async () => {
    const errors = await lintAs('libs/protocol/src/boundary-fixture.ts', "import { Hub } from '@tidings/hub';\nexport const h = Hub;\n");
    expect(errors.length).toBeGreaterThan(0);
  });

  it('refuse the client library importing the relay', async () => {
    const errors = await lintAs('libs/client/src/boundary-fixture.ts', "import type { Relay } from '@tidings/relay';\nexport type R = Relay;\n");
    expect(errors.length).toBeGreaterThan(0);
  });

  it('refuse the auth library importing anything but protocol', async () => {
    const errors = await lintAs('libs/auth/src/boundary-fixture.ts', "import { Hub } from '@tidings/hub';\nexport const h = Hub;\n");
    expect(errors.length).toBeGreaterThan(0);
    // Positive control: protocol is allowed.
    expect(await lintAs('libs/auth/src/boundary-fixture.ts', "import { isCidr } from '@tidings/protocol';\nexport const c = isCidr;\n")).toEqual([]);
  });

  it('refuse protocol importing the auth library', async () => {
    const errors = await lintAs('libs/protocol/src/boundary-fixture.ts', "import { SecretSet } from '@tidings/auth';\nexport const s = SecretSet;\n");
    expect(errors.length).toBeGreaterThan(0);
  });

  it('allow the gateway to import its libraries', async () => {
    const errors = await lintAs(
      'services/gateway/src/boundary-fixture.ts',
      "import { Hub } from '@tidings/hub';\nimport { parseClientFrame } from '@tidings/protocol';\nimport { createAdminAuth } from '@tidings/auth';\n" +
        'export const x = [Hub, parseClientFrame, createAdminAuth];\n',
    );
    expect(errors).toEqual([]);
  });
});
