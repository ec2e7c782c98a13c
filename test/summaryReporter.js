/**
 * Prints the run's result as one plain line ("Tests: N passed, N failed, N skipped")
 * so CI systems that read closing lines understand a jest run.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: todo } = results;
    // Printed after the default reporter's summary, so it is the last line of the run.
    setImmediate(() => process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped + todo} skipped\n`));
  }
}
module.exports = SummaryReporter;
