// MessagePack for Waypoint's protocol, through the maintained `@msgpack/msgpack` (its decoder
// refuses a `__proto__` key and bounds what it reads). `bin` decodes to a Uint8Array view into
// the message (no copy); the caller copies what it keeps.
import { decode as mpDecode, encode as mpEncode } from "@msgpack/msgpack";

export type Value = null | boolean | number | string | Uint8Array | Value[] | { [key: string]: Value };

export class DecodeError extends Error {}

/** Most bytes, entries or nesting a server message may have (the server's own limits are lower). */
const LIMIT = 64 * 1024 * 1024;

/** Decodes one message; anything malformed, truncated or followed by extra bytes is a DecodeError. */
export function decode(input: ArrayBuffer | Uint8Array): Value {
  try {
    return mpDecode(input, {
      maxStrLength: LIMIT,
      maxBinLength: LIMIT,
      maxArrayLength: LIMIT,
      maxMapLength: LIMIT,
      maxExtLength: 0,
    }) as Value;
  } catch (e) {
    throw new DecodeError(e instanceof Error ? e.message : String(e));
  }
}

/** Encodes a value a client sends. */
export function encode(value: Value): Uint8Array {
  return mpEncode(value);
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
