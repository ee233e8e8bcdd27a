import { describe, expect, it } from "vitest";
import { appendFrom } from "./render/lcjs";

const xs = (...v: number[]) => new Float64Array(v);

describe("appendFrom (LightningChart streaming)", () => {
  it("appends only the rows after the last drawn while the window moves forward", () => {
    expect(appendFrom({ first: 0, last: 3 }, xs(0, 1, 2, 3, 4, 5))).toBe(4);
    expect(appendFrom({ first: 0, last: 3 }, xs(1, 2, 3, 4))).toBe(3);
    expect(appendFrom({ first: 0, last: 3 }, xs(0, 1, 2, 3))).toBe(4);
  });
  it("refills on the first draw, a scrub back, a reset, or a window past what was drawn", () => {
    expect(appendFrom(null, xs(0, 1))).toBe(-1);
    expect(appendFrom({ first: 5, last: 9 }, xs(2, 3, 4))).toBe(-1);
    expect(appendFrom({ first: 5, last: 9 }, xs(5, 6, 7))).toBe(-1);
    expect(appendFrom({ first: 0, last: 3 }, xs(10, 11))).toBe(-1);
    expect(appendFrom({ first: 0, last: 3 }, xs())).toBe(-1);
  });
});
