// After `tsc -p tsconfig.esm.json`: Node's ES module loader needs file extensions on relative
// imports, which TypeScript leaves as written; add them, and mark dist/esm as ES modules.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const esm = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'esm');
const relative = /(\bfrom\s*|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"]+?)(?<!\.js)\2/g;
for (const file of readdirSync(esm)) {
  if (!file.endsWith('.js') && !file.endsWith('.d.ts')) continue;
  const path = join(esm, file);
  const text = readFileSync(path, 'utf8');
  const fixed = text.replace(relative, (_m, lead, quote, spec) => `${lead}${quote}${spec}.js${quote}`);
  if (fixed !== text) writeFileSync(path, fixed);
}
writeFileSync(join(esm, 'package.json'), '{ "type": "module" }\n');
