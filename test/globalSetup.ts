import { execFileSync } from 'node:child_process';

/** Tests that run the real CLI, and the console's browser tests, need dist/ to match src/ and web/: build once before the suites. */
export default function globalSetup(): void {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, ['scripts/build-web.js'], { stdio: 'inherit' });
}
