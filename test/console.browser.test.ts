/**
 * The migration console in a real browser: playwright-core drives Debian's
 * Chromium (/usr/bin/chromium, installed by .ci/run) against a real gateway
 * and real upstreams on loopback. Screenshots go to test-output/console/ for a
 * person to look at (STRANGLER_DOCS_SCREENSHOTS=1 also refreshes docs/images/).
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = join(__dirname, '..', 'test-output', 'console');
const DOCS = join(__dirname, '..', 'docs', 'images');
const TOKEN = 'browser-test-token-0123456789';

jest.setTimeout(60_000);

describe('the migration console in Chromium', () => {
  let browser: Browser;
  let monolith: Upstream;
  let orders: Upstream;
  let gw: TestGateway;
  let base: string;
  /** Console messages and page errors: a CSP violation or a script error fails the test. */
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    monolith = await startUpstream();
    orders = await startUpstream();
    gw = await startGateway(`
admin: { port: 0, token: ${TOKEN}, allowEdit: true }
reload: { watch: false }
upstreams:
  monolith: { url: ${monolith.url} }
  orders-svc: { url: ${orders.url} }
routes:
  - { name: monolith, path: /, upstream: monolith }
  - { name: users, path: /api/users, upstream: orders-svc }
  - { name: markup, path: "/<img/src=x/onerror=window.__xss=1>", upstream: monolith }
`);
    base = `http://127.0.0.1:${gw.gw.adminPort}/ui/`;
    for (let i = 0; i < 6; i++) await send(gw.port, `/orders/${4000 + i}`);
    for (let i = 0; i < 2; i++) await send(gw.port, `/api/users/${i}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await Promise.all([monolith?.close(), orders?.close()]);
  });

  async function open(colorScheme: 'light' | 'dark' = 'light'): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1366, height: 860 }, colorScheme });
    const page = await context.newPage();
    page.on('console', (m) => {
      // Refused API calls (401, 409, 422) are expected here and logged by the browser; anything else is not.
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|409|422)\b/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    return page;
  }

  async function signIn(page: Page): Promise<void> {
    await page.goto(base);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Migration overview' }).waitFor();
  }

  async function shot(page: Page, name: string, docsName?: string): Promise<void> {
    const file = join(OUT, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    if (docsName !== undefined && process.env.STRANGLER_DOCS_SCREENSHOTS === '1') copyFileSync(file, join(DOCS, docsName));
  }

  test('the page is served with a strict CSP and no framing; a wrong token is refused, the right one opens the overview with the traffic sent', async () => {
    const page = await open();
    const response = await page.goto(base);
    const headers = response!.headers();
    expect(headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'; style-src 'self' 'nonce-[A-Za-z0-9+/=]+'/);
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['x-frame-options']).toBe('DENY');
    await page.getByLabel('Admin token').fill('wrong-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token was refused').waitFor();
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Migration overview' }).waitFor();
    // 6 requests to the monolith, 2 to the new service: 75% legacy.
    await page.getByTestId('share-now').filter({ hasText: '75%' }).waitFor();
    const routes = page.getByRole('table', { name: 'routes' });
    await routes.getByRole('row', { name: /users/ }).filter({ hasText: 'orders-svc (new)' }).waitFor();
    await routes.getByRole('row', { name: /monolith/ }).filter({ hasText: 'monolith (legacy)' }).first().waitFor();
    // A path from the table that is markup shows as text.
    await routes.getByText('/<img/src=x/onerror=window.__xss=1>').waitFor();
    expect(await routes.locator('img').count()).toBe(0);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    // The token stays in the tab.
    expect(await page.evaluate("sessionStorage.getItem('strangler-admin-token')")).toBe(TOKEN);
    await shot(page, 'overview', 'console-overview.png');
    const dark = await open('dark');
    await signIn(dark);
    await dark.getByTestId('share-now').filter({ hasText: '75%' }).waitFor();
    await shot(dark, 'overview-dark');
    await dark.context().close();
    await page.context().close();
  });

  test('the overview updates live: new traffic shows without reloading the page', async () => {
    const page = await open();
    await signIn(page);
    await page.getByTestId('share-now').filter({ hasText: '75%' }).waitFor();
    for (let i = 0; i < 8; i++) await send(gw.port, `/api/users/${10 + i}`);
    // 6 legacy of 16: 37.5%, shown as "38%".
    await page.getByTestId('share-now').filter({ hasText: '38%' }).waitFor({ timeout: 15_000 });
    await page.context().close();
  });

  test('the inventory lists /orders/{int}, sorts and filters, and downloads the CSV', async () => {
    const page = await open();
    await signIn(page);
    await page.getByRole('link', { name: 'Legacy inventory' }).click();
    const table = page.getByRole('table', { name: 'templates' });
    await table.getByRole('row', { name: /\/orders\/\{int\}/ }).waitFor();
    await page.getByLabel('Filter templates').fill('nothing-like-this');
    await page.getByText('Nothing to show.').waitFor();
    await page.getByLabel('Filter templates').fill('orders');
    await table.getByRole('row', { name: /\/orders\/\{int\}.*monolith.*6/ }).waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv).toContain('GET,/orders/{int},monolith,6,');
    await page.getByLabel('Filter templates').fill('');
    await shot(page, 'inventory', 'console-inventory.png');
    await page.context().close();
  });

  test('route table: validate marks an error at its line; values from the gateway render as text, never HTML', async () => {
    const page = await open();
    await signIn(page);
    await page.getByRole('link', { name: 'Route table' }).click();
    const editor = page.locator('.cm-content');
    await editor.getByText('upstreams:').waitFor();
    // The admin token in the file is shown masked.
    await expect(editor.textContent()).resolves.not.toContain(TOKEN);
    const text = (await json(await send(gw.gw.adminPort!, '/table', { headers: { authorization: `Bearer ${TOKEN}` } }))).text as string;
    // A path that is markup (and not in normal form): the problem quotes it.
    const bad = text.replace('path: /api/users,', 'path: "/<img src=x onerror=window.__xss=1>",');
    const line = bad.split('\n').findIndex((l) => l.includes('<img')) + 1;
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(bad);
    await page.getByRole('button', { name: 'Validate' }).click();
    const result = page.getByTestId('result');
    await result.getByText(`line ${line}, column`).waitFor();
    await result.getByText('path "/<img src=x onerror=window.__xss=1>" is not in normal form', { exact: false }).waitFor();
    expect(await result.locator('img').count()).toBe(0);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    // The problem is marked in the editor's gutter, on that line.
    const marked = page.locator('.cm-gutter-lint .cm-gutterElement').filter({ has: page.locator('.cm-lint-marker-error') });
    await marked.first().waitFor();
    const lineNumbers = await page.locator('.cm-lineNumbers .cm-gutterElement').allTextContents();
    const markerBox = await marked.first().boundingBox();
    const lineBox = await page.locator('.cm-lineNumbers .cm-gutterElement').nth(lineNumbers.indexOf(String(line))).boundingBox();
    expect(Math.abs(markerBox!.y - lineBox!.y)).toBeLessThan(4);
    await shot(page, 'table-invalid', 'console-table.png');
    await page.context().close();
  });

  test('route table: apply changes routing; a stale apply gets the conflict message and writes nothing', async () => {
    const page = await open();
    await signIn(page);
    await page.getByRole('link', { name: 'Route table' }).click();
    const editor = page.locator('.cm-content');
    await editor.getByText('upstreams:').waitFor();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const text = json(await send(gw.gw.adminPort!, '/table', { headers: auth })).text as string;
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(`${text}  - { name: orders, path: /api/orders, upstream: orders-svc }\n`);
    await page.getByRole('button', { name: 'Preview changes' }).click();
    await page.getByTestId('result').getByText('route added: orders (/api/orders -> orders-svc)').waitFor();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('result').getByText('Saved and applied').waitFor();
    const before = orders.received.length;
    expect((await send(gw.port, '/api/orders/7')).status).toBe(200);
    expect(orders.received.slice(before).map((r) => r.url)).toEqual(['/api/orders/7']);

    // Someone else saves while this page still edits the version it loaded.
    const current = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
    await page.getByRole('button', { name: 'Reload from gateway' }).click();
    await page.getByTestId('table-version').filter({ hasText: current.version }).waitFor();
    const other = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': current.version }, body: `${current.text}  - { name: billing, path: /api/billing, upstream: orders-svc }\n` });
    expect(other.status).toBe(200);
    const saved = readFileSync(gw.configPath, 'utf8');
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('# my comment\n');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Apply' }).click();
    const result = page.getByTestId('result');
    await result.getByText('Not saved: the route table changed since you loaded it').waitFor();
    await result.getByText('route added: billing (/api/billing -> orders-svc)').waitFor();
    expect(readFileSync(gw.configPath, 'utf8')).toBe(saved);
    await shot(page, 'table-conflict');
    await page.context().close();
  });

  test('reloads, upstreams and canaries pages show their data; no script error or CSP violation on any page', async () => {
    const page = await open();
    await signIn(page);
    await page.getByRole('link', { name: 'Reloads' }).click();
    await page.getByRole('list', { name: 'reloads' }).getByText('console by admin token', { exact: false }).first().waitFor();
    await page.getByRole('link', { name: 'Upstreams' }).click();
    await page.getByRole('table', { name: 'upstreams' }).getByRole('row', { name: /orders-svc/ }).waitFor();
    await page.getByRole('link', { name: 'Canaries' }).click();
    await page.getByText('No route has a canary.').waitFor();
    await shot(page, 'canaries');
    await until(() => true);
    expect(problems).toEqual([]);
    await page.context().close();
  });
});
