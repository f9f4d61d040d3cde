module.exports = {
  ...require('../jest.preset.js'),
  rootDir: __dirname,
  displayName: 'test',
  testTimeout: 60_000,
  // Process-level scenarios share one machine's two cores: run them one file at a time.
  maxWorkers: 1,
};
