import { encode as refEncode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { decode, DecodeError, encode, f32 } from "./msgpack";

describe("msgpack decode", () => {
  it("decodes what a reference encoder writes", () => {
    const value = {
      type: "scene",
      seq: 70000,
      t_secs: 1.25,
      neg: -5,
      big_neg: -40000,
      running: true,
      none: null,
      agents: [{ id: 1, kind: "vehicle", x_m: -2.5 }],
      long: "x".repeat(300),
      many: Array.from({ length: 40 }, (_, i) => i * 1000),
    };
    expect(decode(refEncode(value))).toEqual(value);
  });

  it("turns a bin of little-endian f32 into a Float32Array without touching the source", () => {
    const pts = new Float32Array([1.5, -2.25, 3, 0.125]);
    const msg = refEncode({ type: "lidar", points: new Uint8Array(pts.buffer) });
    const m = decode(msg) as { points: Uint8Array };
    expect(m.points).toBeInstanceOf(Uint8Array);
    // The bin is a view into the message (no copy while decoding)...
    expect(m.points.buffer).toBe(msg.buffer);
    // ...and f32 gives an aligned copy of its own.
    const arr = f32(m.points);
    expect(Array.from(arr)).toEqual([1.5, -2.25, 3, 0.125]);
    expect(arr.buffer).not.toBe(msg.buffer);
  });

  it("reads a JSON null in a number array as NaN, not as 0", () => {
    const arr = f32(JSON.parse("[1.5, null, 2]") as number[]);
    expect(arr[0]).toBe(1.5);
    expect(Number.isNaN(arr[1])).toBe(true);
    expect(arr[2]).toBe(2);
  });

  it("rejects truncated, trailing and unknown input with a DecodeError", () => {
    const good = refEncode({ a: [1, 2, 3] });
    expect(() => decode(good.subarray(0, good.length - 1))).toThrow(DecodeError);
    const trailing = new Uint8Array([...good, 0x01]);
    expect(() => decode(trailing)).toThrow(DecodeError);
    expect(() => decode(new Uint8Array([0xc1]))).toThrow(DecodeError);
    const deep = new Uint8Array(200).fill(0x91);
    expect(() => decode(deep)).toThrow(DecodeError);
  });

  it("keeps lengths right past 65,535 bytes and entries", () => {
    const big = { type: "x", s: "y".repeat(70000), a: Array.from({ length: 70000 }, (_, i) => i % 7) };
    expect(decode(encode(big))).toEqual(big);
    const wide: { [k: string]: number } = {};
    for (let i = 0; i < 66000; i++) wide[`k${i}`] = i;
    expect(decode(encode(wide))).toEqual(wide);
  });

  it("refuses a __proto__ key instead of touching the prototype", () => {
    // {"__proto__": {"polluted": true}}, written by hand.
    const evil = new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode("__proto__"), 0x81, 0xa8,
      ...new TextEncoder().encode("polluted"), 0xc3]);
    expect(() => decode(evil)).toThrow(DecodeError);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it("round-trips what the client encodes", () => {
    const cmd = { type: "command", id: 300, command: { op: "inject_fault", sensor: "gps", duration_secs: 2.5, start: -1 } };
    expect(decode(encode(cmd))).toEqual(cmd);
    const sub = { type: "subscribe", id: 0, streams: Array.from({ length: 20 }, (_, i) => `s${i}`) };
    expect(decode(encode(sub))).toEqual(sub);
  });
});
