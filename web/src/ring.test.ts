import { describe, expect, it } from "vitest";
import { Ring, SeriesTable } from "./ring";

describe("Ring", () => {
  it("keeps the newest values in order once full", () => {
    const r = new Ring(3);
    for (const v of [1, 2, 3, 4, 5]) r.push(v);
    expect(Array.from(r.toArray())).toEqual([3, 4, 5]);
    expect(r.length).toBe(3);
    expect(r.at(0)).toBe(3);
    expect(r.last()).toBe(5);
    expect(r.at(3)).toBeNaN();
  });

  it("returns a partial buffer before it is full and empties on clear", () => {
    const r = new Ring(4);
    r.push(7);
    r.push(8);
    expect(Array.from(r.toArray())).toEqual([7, 8]);
    r.clear();
    expect(r.toArray().length).toBe(0);
    expect(() => new Ring(0)).toThrow(RangeError);
  });
});

describe("SeriesTable", () => {
  it("aligns columns on one time axis, with gaps as NaN for late or missing series", () => {
    const t = new SeriesTable(3);
    t.push(0, { a: 1 });
    t.push(1, { a: 2, b: 10 });
    t.push(2, { b: 11 });
    t.push(3, { a: 4, b: 12 });
    const s = t.snapshot();
    expect(Array.from(s.t)).toEqual([1, 2, 3]);
    expect(Array.from(s.series.a ?? [])).toEqual([2, NaN, 4]);
    expect(Array.from(s.series.b ?? [])).toEqual([10, 11, 12]);
    expect(t.names().sort()).toEqual(["a", "b"]);
  });

  it("drops a series absent for the whole window, and only then", () => {
    const t = new SeriesTable(3);
    t.push(0, { v1: 1, v2: 5 });
    t.push(1, { v2: 6 });
    t.push(2, { v2: 7 });
    expect(t.names().sort()).toEqual(["v1", "v2"]); // v1 still has a value in the window
    t.push(3, { v2: 8 });
    expect(t.names()).toEqual(["v2"]); // gone for three rows of three: dropped
    expect(Object.keys(t.snapshot().series)).toEqual(["v2"]);
    t.push(4, { v1: 2, v2: 9 }); // it may come back, with gaps before
    expect(Array.from(t.snapshot().series.v1 ?? [])).toEqual([NaN, NaN, 2]);
  });
});

describe("SeriesTable.snapshot", () => {
  it("cuts the rows to a time range, every column alike", () => {
    const t = new SeriesTable(100);
    for (let i = 0; i < 10; i++) t.push(i, { a: i * 10, ...(i > 4 ? { b: i } : {}) });
    const s = t.snapshot(3, 6);
    expect(Array.from(s.t)).toEqual([3, 4, 5, 6]);
    expect(Array.from(s.series.a ?? [])).toEqual([30, 40, 50, 60]);
    expect(Array.from(s.series.b ?? [])).toEqual([NaN, NaN, 5, 6]);
    expect(t.snapshot(20).t.length).toBe(0);
    expect(Array.from(t.snapshot(-Infinity, 1.5).t)).toEqual([0, 1]);
  });
});
