// A small MessagePack codec for Waypoint's protocol: maps, arrays, strings, numbers, booleans,
// nil and bin. `bin` decodes to a Uint8Array view into the message (no copy); the caller copies
// what it keeps.

export type Value = null | boolean | number | string | Uint8Array | Value[] | { [key: string]: Value };

export class DecodeError extends Error {}

export function decode(input: ArrayBuffer | Uint8Array): Value {
  const u8 = input instanceof Uint8Array ? input : new Uint8Array(input);
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const text = new TextDecoder();
  let p = 0;
  const need = (n: number): void => {
    if (p + n > u8.length) throw new DecodeError(`truncated message at byte ${p}`);
  };
  const str = (n: number): string => {
    need(n);
    const s = text.decode(u8.subarray(p, p + n));
    p += n;
    return s;
  };
  const bin = (n: number): Uint8Array => {
    need(n);
    const b = u8.subarray(p, p + n);
    p += n;
    return b;
  };
  const arr = (n: number, depth: number): Value[] => {
    const a: Value[] = new Array<Value>(n);
    for (let i = 0; i < n; i++) a[i] = read(depth + 1);
    return a;
  };
  const map = (n: number, depth: number): { [key: string]: Value } => {
    const m: { [key: string]: Value } = {};
    for (let i = 0; i < n; i++) {
      const k = read(depth + 1);
      m[String(k)] = read(depth + 1);
    }
    return m;
  };
  const u8at = (): number => {
    need(1);
    return u8[p++] as number;
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(p);
    p += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(p);
    p += 4;
    return v;
  };
  function read(depth: number): Value {
    if (depth > 64) throw new DecodeError("nesting too deep");
    const b = u8at();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 256;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f, depth);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f, depth);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    let v: number;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return bin(u8at());
      case 0xc5:
        return bin(u16());
      case 0xc6:
        return bin(u32());
      case 0xca:
        need(4);
        v = view.getFloat32(p);
        p += 4;
        return v;
      case 0xcb:
        need(8);
        v = view.getFloat64(p);
        p += 8;
        return v;
      case 0xcc:
        return u8at();
      case 0xcd:
        return u16();
      case 0xce:
        return u32();
      case 0xcf:
        need(8);
        v = Number(view.getBigUint64(p));
        p += 8;
        return v;
      case 0xd0:
        need(1);
        v = view.getInt8(p);
        p += 1;
        return v;
      case 0xd1:
        need(2);
        v = view.getInt16(p);
        p += 2;
        return v;
      case 0xd2:
        need(4);
        v = view.getInt32(p);
        p += 4;
        return v;
      case 0xd3:
        need(8);
        v = Number(view.getBigInt64(p));
        p += 8;
        return v;
      case 0xd9:
        return str(u8at());
      case 0xda:
        return str(u16());
      case 0xdb:
        return str(u32());
      case 0xdc:
        return arr(u16(), depth);
      case 0xdd:
        return arr(u32(), depth);
      case 0xde:
        return map(u16(), depth);
      case 0xdf:
        return map(u32(), depth);
      default:
        throw new DecodeError(`unsupported MessagePack byte 0x${b.toString(16)}`);
    }
  }
  const value = read(0);
  if (p !== u8.length) throw new DecodeError(`${u8.length - p} trailing bytes`);
  return value;
}

/** Encodes the values a client sends (no bin, no extension types). */
export function encode(value: Value): Uint8Array {
  const out: number[] = [];
  const textEnc = new TextEncoder();
  const be = (n: number, bytes: number): void => {
    for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  };
  function write(v: Value): void {
    if (v === null) out.push(0xc0);
    else if (v === true) out.push(0xc3);
    else if (v === false) out.push(0xc2);
    else if (typeof v === "number") {
      if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
        if (v < 128) out.push(v);
        else if (v < 256) out.push(0xcc, v);
        else if (v < 65536) (out.push(0xcd), be(v, 2));
        else (out.push(0xce), be(v, 4));
      } else if (Number.isInteger(v) && v < 0 && v >= -32) out.push(v + 256);
      else if (Number.isInteger(v) && v < 0 && v >= -(2 ** 31)) {
        out.push(0xd2);
        const b = new DataView(new ArrayBuffer(4));
        b.setInt32(0, v);
        out.push(...new Uint8Array(b.buffer));
      } else {
        out.push(0xcb);
        const b = new DataView(new ArrayBuffer(8));
        b.setFloat64(0, v);
        out.push(...new Uint8Array(b.buffer));
      }
    } else if (typeof v === "string") {
      const b = textEnc.encode(v);
      if (b.length < 32) out.push(0xa0 | b.length);
      else if (b.length < 256) out.push(0xd9, b.length);
      else (out.push(0xda), be(b.length, 2));
      out.push(...b);
    } else if (v instanceof Uint8Array) {
      out.push(0xc6);
      be(v.length, 4);
      out.push(...v);
    } else if (Array.isArray(v)) {
      if (v.length < 16) out.push(0x90 | v.length);
      else (out.push(0xdc), be(v.length, 2));
      for (const x of v) write(x);
    } else {
      const keys = Object.keys(v).filter((k) => v[k] !== undefined);
      if (keys.length < 16) out.push(0x80 | keys.length);
      else (out.push(0xde), be(keys.length, 2));
      for (const k of keys) {
        write(k);
        write(v[k] as Value);
      }
    }
  }
  write(value);
  return new Uint8Array(out);
}

/** Little-endian f32 values of a `bin` (or a plain number array) in a fresh, aligned array. */
export function f32(v: Value | undefined): Float32Array {
  if (v instanceof Uint8Array) {
    const copy = new Uint8Array(v.length - (v.length % 4));
    copy.set(v.subarray(0, copy.length));
    return new Float32Array(copy.buffer);
  }
  // JSON sends a value that is not a number (NaN, an infinity) as null: NaN here, never 0.
  if (Array.isArray(v)) return Float32Array.from(v as (number | null)[], (x) => (x === null ? NaN : x));
  return new Float32Array(0);
}
