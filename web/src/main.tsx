import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setToken, token, Unauthorized } from './api';
import { Canaries } from './pages/canaries';
import { Inventory } from './pages/inventory';
import { Overview } from './pages/overview';
import { Reloads } from './pages/reloads';
import { RouteTable } from './pages/routeTable';
import { Upstreams } from './pages/upstreams';

const PAGES = [
  { id: 'overview', title: 'Overview', view: Overview },
  { id: 'inventory', title: 'Legacy inventory', view: Inventory },
  { id: 'upstreams', title: 'Upstreams', view: Upstreams },
  { id: 'canaries', title: 'Canaries', view: Canaries },
  { id: 'table', title: 'Route table', view: RouteTable },
  { id: 'reloads', title: 'Reloads', view: Reloads },
] as const;

function currentPage(): string {
  const id = location.hash.replace(/^#\/?/, '');
  return PAGES.some((p) => p.id === id) ? id : 'overview';
}

function Login(props: { failed: boolean; onDone: () => void }) {
  const [value, setValue] = useState('');
  return (
    <main class="login">
      <h1>Strangler console</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          props.onDone();
        }}
      >
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        {props.failed && <p role="alert" class="error">That token was refused. Use the gateway's <code>admin.token</code>.</p>}
        <button type="submit">Sign in</button>
        <p class="muted">The token stays in this browser tab only (session storage).</p>
      </form>
    </main>
  );
}

function App() {
  const [page, setPage] = useState(currentPage());
  const [auth, setAuth] = useState<'checking' | 'ok' | 'login' | 'refused'>('checking');
  const check = () => {
    api('/reloads').then(
      () => setAuth('ok'),
      (err) => setAuth(err instanceof Unauthorized ? (token() === null ? 'login' : 'refused') : 'ok'),
    );
  };
  useEffect(() => {
    check();
    const onHash = () => setPage(currentPage());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    document.title = `${PAGES.find((p) => p.id === page)!.title} · Strangler console`;
  }, [page]);
  if (auth === 'checking') return <p class="muted">Connecting…</p>;
  if (auth === 'login' || auth === 'refused') return <Login failed={auth === 'refused'} onDone={check} />;
  const View = PAGES.find((p) => p.id === page)!.view;
  return (
    <>
      <header>
        <span class="brand">Strangler</span>
        <nav aria-label="Console pages">
          {PAGES.map((p) => (
            <a href={`#/${p.id}`} aria-current={p.id === page ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        {token() !== null && (
          <button type="button" class="link" onClick={() => { setToken(null); setAuth('login'); }}>
            Sign out
          </button>
        )}
      </header>
      <main id="main">
        <View onUnauthorized={() => setAuth(token() === null ? 'login' : 'refused')} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
