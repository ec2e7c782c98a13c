/**
 * Prints the run's result as one plain line ("Tests: N passed, N failed, N skipped")
 * as the very last line of output, so CI systems that read closing lines understand a jest run.
 */
const { writeSync } = require('node:fs');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: todo } = results;
    const line = `\nTests: ${passed} passed, ${failed} failed, ${skipped + todo} skipped\n`;
    // On exit, after jest's own closing messages.
    process.once('exit', () => writeSync(1, line));
  }
}
module.exports = SummaryReporter;
