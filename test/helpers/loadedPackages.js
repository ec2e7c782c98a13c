// Preloaded into a gateway process (node -r): on SIGUSR2 the main thread writes
// the npm packages it has loaded, one per line, to $LOADED_PACKAGES_FILE.
const { isMainThread } = require('node:worker_threads');
if (isMainThread) {
  process.on('SIGUSR2', () => {
    const names = new Set();
    for (const file of Object.keys(require.cache)) {
      const m = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
      if (m) names.add(m[1].replace(/\\/g, '/'));
    }
    require('node:fs').writeFileSync(process.env.LOADED_PACKAGES_FILE, [...names].sort().join('\n') + '\n');
  });
}
