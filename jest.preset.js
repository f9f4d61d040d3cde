// Shared Jest settings for every project: TypeScript through ts-jest (no type check here;
// `npm run build` type-checks), workspace imports mapped to sources so unit tests need no
// build, and a JSON summary per project that tools/run-tests.mjs adds up.
const path = require('path');
const root = __dirname;

module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(root, 'tsconfig.json'), diagnostics: false }],
    // jose 6 ships ES modules only; Node loads them with require() (20.19+), Jest's CommonJS
    // runtime cannot, so its files are compiled to CommonJS for the tests.
    '^.+/node_modules/jose/.+\\.js$': [
      'ts-jest',
      { tsconfig: { allowJs: true, module: 'commonjs', target: 'ES2022', isolatedModules: true }, diagnostics: false },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  moduleNameMapper: {
    '^@tidings/(protocol|hub|history|bus|relay|client|auth)$': path.join(root, 'libs/$1/src/index.ts'),
    '^@tidings/gateway$': path.join(root, 'services/gateway/src/index.ts'),
    '^@tidings/testing$': path.join(root, 'test/support/index.ts'),
  },
  reporters: ['default', path.join(root, 'tools/jest-summary-reporter.js')],
};
