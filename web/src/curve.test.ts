import { describe, expect, it } from "vitest";
import { curvePoints } from "./curve";

describe("curvePoints", () => {
  it("spans the box: the least value at the bottom, the greatest at the top, epochs left to right", () => {
    const p = curvePoints([3, 1, 2], 108, 58, 4);
    expect(p).toEqual([
      [4, 4],
      [54, 54],
      [104, 29],
    ]);
  });
  it("skips what is not a number; a flat series lies along the bottom", () => {
    expect(curvePoints([NaN, 2, NaN], 100, 50).map(([x]) => x)).toEqual([50]);
    expect(curvePoints([1, 1], 100, 50, 0)).toEqual([
      [0, 50],
      [100, 50],
    ]);
    expect(curvePoints([], 100, 50)).toEqual([]);
  });
});
