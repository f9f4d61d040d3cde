// ESLint: TypeScript rules plus Nx module boundaries, which make the layering real:
// protocol <- hub, history, bus, relay, client, auth <- gateway; protocol, client <- console;
// tests may use anything.
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default [
  { ignores: ['**/dist/**', '**/node_modules/**', 'reports/**', '.nx/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'scope:protocol', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:hub', onlyDependOnLibsWithTags: ['scope:protocol'] },
            { sourceTag: 'scope:history', onlyDependOnLibsWithTags: ['scope:protocol'] },
            { sourceTag: 'scope:bus', onlyDependOnLibsWithTags: ['scope:protocol'] },
            { sourceTag: 'scope:relay', onlyDependOnLibsWithTags: ['scope:protocol'] },
            { sourceTag: 'scope:client', onlyDependOnLibsWithTags: ['scope:protocol'] },
            { sourceTag: 'scope:auth', onlyDependOnLibsWithTags: ['scope:protocol'] },
            // The console page (browser code): the client library, and protocol's types.
            { sourceTag: 'scope:console', onlyDependOnLibsWithTags: ['scope:client', 'scope:protocol'] },
            {
              sourceTag: 'scope:gateway',
              onlyDependOnLibsWithTags: ['scope:protocol', 'scope:hub', 'scope:history', 'scope:bus', 'scope:relay', 'scope:auth'],
            },
            { sourceTag: 'scope:test', onlyDependOnLibsWithTags: ['*'] },
          ],
        },
      ],
    },
  },
];
