import { execFileSync } from 'node:child_process';

/** Tests that run the real CLI need dist/ to match src/: build once before the suites. */
export default function globalSetup(): void {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
