/** Real sockets on loopback: tests are I/O bound, two workers fit the 2-core machines. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  maxWorkers: 2,
  testTimeout: 20000,
  // A safety net for CI: a leaked handle must not hang the run (find leaks with --detectOpenHandles).
  forceExit: true,
  globalSetup: '<rootDir>/test/globalSetup.ts',
  reporters: ['default', '<rootDir>/test/summaryReporter.js'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};
