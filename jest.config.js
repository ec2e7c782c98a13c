/** Real sockets on loopback: tests are I/O bound, two workers fit the 2-core machines. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  maxWorkers: 2,
  testTimeout: 20000,
  globalSetup: '<rootDir>/test/globalSetup.ts',
  reporters: ['default', '<rootDir>/test/summaryReporter.js'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};
