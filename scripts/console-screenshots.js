/**
 * Refreshes the console screenshots in docs/images/ (run after `npm run build`):
 *   node scripts/console-screenshots.js
 * Starts a gateway and example upstreams on loopback, sends a morning's worth
 * of portal traffic (signed-in users, a canary, a parallel run, a failing
 * service with a fallback), then drives Debian's Chromium through the console.
 */
const { createHmac } = require('node:crypto');
const { mkdtempSync, writeFileSync } = require('node:fs');
const http = require('node:http');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { chromium } = require('playwright-core');
const { Gateway } = require('../dist/src/server.js');

const SECRET = 'screenshots-secret-of-at-least-32-bytes';
const DOCS = join(__dirname, '..', 'docs', 'images');

function upstream(name, delayMs) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        // The new orders service answers like the monolith, except for one order in ten (a rounding bug).
        const id = Number(/(\d+)$/.exec(req.url ?? '')?.[1] ?? 0);
        res.end(JSON.stringify({ id, total: name === 'orders' && id % 10 === 7 ? 19.9 : 19.95 }));
      }, delayMs);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function jwt(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iss: 'portal', exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

function get(port, path, headers = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', resolve);
    req.end();
  });
}

(async () => {
  const [mono, users, orders] = await Promise.all([upstream('monolith', 8), upstream('users', 3), upstream('orders', 4)]);
  const url = (s) => `http://127.0.0.1:${s.address().port}`;
  const dir = mkdtempSync(join(tmpdir(), 'strangler-shots-'));
  const file = join(dir, 'routes.yaml');
  writeFileSync(
    file,
    `# The portal's front door
admin: { port: 0, allowEdit: true }
reload: { watch: false }
auth:
  jwt: { secret: "\${JWT_SECRET}", issuer: portal }
upstreams:
  monolith: { url: ${url(mono)} }
  users: { url: ${url(users)} }
  orders: { url: ${url(orders)} }
  email: { url: http://127.0.0.1:9, breaker: { minRequests: 5 } }
migration:
  legacy: [monolith]
  templates: ["/reports/{name}/pdf"]
routes:
  - { name: portal, path: /, upstream: monolith, auth: optional }
  - { name: users, path: /api/users, upstream: users, stripPrefix: /api, auth: optional }
  - name: orders
    path: /api/orders
    upstream: monolith
    auth: optional
    canary: { upstream: orders, percent: 25, sticky: user }
    shadow: { upstream: orders, percent: 50 }
  - { name: email, path: /api/email, upstream: email, fallback: monolith, auth: optional }
`,
  );
  const gw = await Gateway.start({ configPath: file, port: 0, host: '127.0.0.1', env: { JWT_SECRET: SECRET }, logOutputs: { main: require('node:fs').createWriteStream('/dev/null') } });
  const paths = (i) => [`/orders/${48000 + (i % 50)}`, `/orders/${48000 + (i % 50)}/items/${i % 4}`, `/reports/quarterly/pdf`, `/invoices/2026-11-${10 + (i % 19)}`, `/api/users/${i % 80}`, `/api/orders/${i % 30}`, `/api/email/send`, `/account/settings`, `/search`];
  for (let i = 0; i < 400; i++) {
    const auth = { authorization: `Bearer ${jwt(`user-${i % 120}`)}` };
    const list = paths(i);
    for (let k = 0; k < list.length; k++) if ((i + k) % (k + 1) === 0) await get(gw.port, list[k], auth);
  }
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' })).newPage();
  const base = `http://127.0.0.1:${gw.adminPort}/ui/`;
  await page.goto(base);
  await page.getByRole('heading', { name: 'Migration overview' }).waitFor();
  await page.getByRole('table', { name: 'routes' }).getByText('orders (legacy)', { exact: false }).first().waitFor().catch(() => undefined);
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(DOCS, 'console-overview.png'), fullPage: true });
  await page.getByRole('link', { name: 'Legacy inventory' }).click();
  await page.getByRole('table', { name: 'templates' }).waitFor();
  await page.screenshot({ path: join(DOCS, 'console-inventory.png'), fullPage: true });
  await page.getByRole('link', { name: 'Route table' }).click();
  const editor = page.locator('.cm-content');
  await editor.getByText('upstreams:').waitFor();
  const text = await editor.evaluate((el) => el.cmView?.view?.state.doc.toString() ?? null).catch(() => null);
  await editor.click();
  await page.keyboard.press('Control+A');
  const source = text ?? require('node:fs').readFileSync(file, 'utf8');
  await page.keyboard.insertText(source.replace('upstream: users, stripPrefix', 'upstream: user, stripPrefix'));
  await page.getByRole('button', { name: 'Validate' }).click();
  await page.getByTestId('result').getByText('problem', { exact: false }).waitFor();
  await page.screenshot({ path: join(DOCS, 'console-table.png'), fullPage: false });
  await browser.close();
  await gw.stop();
  for (const s of [mono, users, orders]) s.close();
  process.stdout.write(`screenshots written to ${DOCS}\n`);
})().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
