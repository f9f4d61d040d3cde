// Writes reports/jest/<project>.json with Jest's own counts, for tools/run-tests.mjs.
const fs = require('fs');
const path = require('path');

class SummaryReporter {
  constructor(globalConfig) {
    this.globalConfig = globalConfig;
  }

  onRunComplete(_contexts, results) {
    const dir = path.join(__dirname, '..', 'reports', 'jest');
    fs.mkdirSync(dir, { recursive: true });
    const name = path.relative(path.join(__dirname, '..'), this.globalConfig.rootDir).replace(/[\\/]/g, '-') || 'root';
    const summary = {
      project: name,
      passed: results.numPassedTests,
      failed: results.numFailedTests,
      pending: results.numPendingTests + results.numTodoTests,
      failedSuites: results.numFailedTestSuites,
      suiteErrors: results.numRuntimeErrorTestSuites,
      success: results.success,
      // Which tests failed, so the closing line of `npm test` can name them.
      failures: results.testResults.flatMap((file) => [
        ...(file.testExecError ? [{ file: path.relative(this.globalConfig.rootDir, file.testFilePath), test: `(suite did not run) ${file.testExecError.message}`.slice(0, 300) }] : []),
        ...file.testResults
          .filter((t) => t.status === 'failed')
          .map((t) => ({ file: path.relative(this.globalConfig.rootDir, file.testFilePath), test: t.fullName })),
      ]),
    };
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(summary, null, 2));
  }
}

module.exports = SummaryReporter;
