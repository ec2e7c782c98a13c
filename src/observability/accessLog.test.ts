import { RequestState } from '../core/state';
import { AccessLog } from './accessLog';

function capture(kind?: string): { log: AccessLog; lines: string[] } {
  const lines: string[] = [];
  return { log: new AccessLog({ write: (l: string) => void lines.push(l) }, kind), lines };
}

const facts = { status: 200, durationMs: 1.23456, bytes: 321, aborted: false, client: '127.0.0.1' };

describe('access log lines', () => {
  test('one pino-format JSON line per request: level, time, pid, fields, msg', () => {
    const { log, lines } = capture();
    const s = new RequestState('r-1', 0, 'GET', '/api/a', undefined, 0);
    s.route = 'users';
    s.upstream = 'users-svc';
    s.userId = 'u42';
    s.canarySide = 'canary';
    s.canaryReason = 'bucket';
    s.fellBack = true;
    log.request(s, facts);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('}\n')).toBe(true);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(line)).toEqual(['level', 'time', 'pid', 'reqId', 'method', 'path', 'route', 'upstream', 'status', 'durationMs', 'bytes', 'aborted', 'user', 'canary', 'canaryReason', 'fallback', 'client', 'msg']);
    expect(line).toMatchObject({ level: 30, pid: process.pid, reqId: 'r-1', method: 'GET', path: '/api/a', status: 200, durationMs: 1.23, bytes: 321, aborted: false, fallback: true, msg: 'request' });
    expect(Math.abs((line.time as number) - Date.now())).toBeLessThan(5000);
  });

  test('fields that are not known are left out, as pino leaves out undefined', () => {
    const { log, lines } = capture('access');
    const s = new RequestState('r-2', 0, 'POST', '/x', undefined, 0);
    s.errorCode = 'ROUTE_NOT_FOUND';
    log.request(s, { ...facts, status: 404, client: undefined, aborted: true });
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toEqual({ level: 30, time: line.time, pid: process.pid, kind: 'access', reqId: 'r-2', method: 'POST', path: '/x', status: 404, durationMs: 1.23, bytes: 321, aborted: true, error: 'ROUTE_NOT_FOUND', msg: 'request' });
  });

  test.each([
    [0, 0],
    [0.004, 0],
    [0.05, 0.05],
    [1.006, 1.01],
    [12.3, 12.3],
    [7, 7],
    [999.999, 1000],
    [123456.789, 123456.79],
  ])('durationMs %p is written as %p (two decimals at most)', (ms, expected) => {
    const { log, lines } = capture();
    log.request(new RequestState('r-3', 0, 'GET', '/d', undefined, 0), { ...facts, durationMs: ms });
    expect(JSON.parse(lines[0]!).durationMs).toBe(expected);
  });

  test.each([['quote"and\\backslash'], ['ctl\u0001\u001f'], ['tab\there'], ['ünïcødé/路径'], ['lone\ud800surrogate'], ['{"json":"inside"}']])('a hostile value stays one valid line: %j', (v) => {
    const { log, lines } = capture();
    const s = new RequestState(v, 0, 'GET', `/p/${v}`, undefined, 0);
    s.userId = v;
    log.request(s, facts);
    expect(lines[0]!.split('\n')).toHaveLength(2);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    const expected = v.includes('\ud800') ? v.replace('\ud800', '\ufffd') : v;
    expect([line.reqId, line.user, (line.path as string).slice(3)].map((x) => (x as string).replace('\ud800', '\ufffd'))).toEqual([expected, expected, expected]);
  });
});
