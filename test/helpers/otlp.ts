/**
 * A decoder of OTLP trace exports (`ExportTraceServiceRequest`, protobuf),
 * for tests that play the collector: only the fields the tests read. Written
 * from the protobuf wire format and the OTLP .proto field numbers, so it does
 * not share code (or bugs) with the encoder under test.
 */

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string }>;
  status?: { code?: number; message?: string };
  service: string;
}

interface Field {
  no: number;
  /** Length-delimited fields' bytes; varints and fixed-width values as numbers (bigint for 64-bit). */
  bytes?: Buffer;
  int?: bigint;
}

function varint(buf: Buffer, at: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[at++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, at];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    const [key, next] = varint(buf, at);
    at = next;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, n] = varint(buf, at);
      out.push({ no, int: v });
      at = n;
    } else if (wire === 1) {
      out.push({ no, int: buf.readBigUInt64LE(at), bytes: buf.subarray(at, at + 8) });
      at += 8;
    } else if (wire === 2) {
      const [len, n] = varint(buf, at);
      out.push({ no, bytes: buf.subarray(n, n + Number(len)) });
      at = n + Number(len);
    } else if (wire === 5) {
      out.push({ no, int: BigInt(buf.readUInt32LE(at)) });
      at += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

const all = (fs: Field[], no: number) => fs.filter((f) => f.no === no);
const one = (fs: Field[], no: number) => fs.find((f) => f.no === no);

function keyValues(fs: Field[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of fs) {
    const parts = fields(kv.bytes!);
    const key = one(parts, 1)!.bytes!.toString('utf8');
    const value = fields(one(parts, 2)?.bytes ?? Buffer.alloc(0));
    const v = value[0];
    if (v === undefined) continue;
    if (v.no === 1) out[key] = v.bytes!.toString('utf8');
    else if (v.no === 2) out[key] = v.int === 1n;
    else if (v.no === 3) out[key] = Number(BigInt.asIntN(64, v.int!));
    else if (v.no === 4) out[key] = v.bytes!.readDoubleLE(0);
  }
  return out;
}

/** Every span of one export, flattened, with its resource's service.name. */
export function decodeTraces(body: Buffer): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  for (const rs of all(fields(body), 1)) {
    const r = fields(rs.bytes!);
    const resource = fields(one(r, 1)?.bytes ?? Buffer.alloc(0));
    const service = String(keyValues(all(resource, 1))['service.name']);
    for (const ss of all(r, 2)) {
      for (const sp of all(fields(ss.bytes!), 2)) {
        const s = fields(sp.bytes!);
        const parent = one(s, 4)?.bytes;
        const status = one(s, 15)?.bytes;
        const st = status === undefined ? undefined : fields(status);
        spans.push({
          traceId: one(s, 1)!.bytes!.toString('hex'),
          spanId: one(s, 2)!.bytes!.toString('hex'),
          ...(parent !== undefined && parent.length > 0 ? { parentSpanId: parent.toString('hex') } : {}),
          name: one(s, 5)?.bytes?.toString('utf8') ?? '',
          kind: Number(one(s, 6)?.int ?? 0n),
          attributes: keyValues(all(s, 9)),
          links: all(s, 13).map((l) => {
            const lf = fields(l.bytes!);
            return { traceId: one(lf, 1)!.bytes!.toString('hex'), spanId: one(lf, 2)!.bytes!.toString('hex') };
          }),
          ...(st === undefined ? {} : { status: { code: Number(one(st, 3)?.int ?? 0n), ...(one(st, 2) ? { message: one(st, 2)!.bytes!.toString('utf8') } : {}) } }),
          service,
        });
      }
    }
  }
  return spans;
}
