import { describe, expect, it } from "vitest";
import { backoffMs, Coalescer } from "./coalesce";

describe("Coalescer", () => {
  it("hands over only the latest value of each field, once", () => {
    const c = new Coalescer<{ a: number; b: string }>();
    expect(c.take()).toBeNull();
    c.set("a", 1);
    c.set("a", 2);
    c.set("b", "x");
    expect(c.merged).toBe(1);
    expect(c.take()).toEqual({ a: 2, b: "x" });
    expect(c.take()).toBeNull();
  });
});

describe("backoffMs", () => {
  it("grows exponentially to a cap, with jitter between half and all of it", () => {
    expect(backoffMs(0, 250, 10000, () => 0)).toBe(125);
    expect(backoffMs(0, 250, 10000, () => 0.999999)).toBeCloseTo(250, 3);
    expect(backoffMs(3, 250, 10000, () => 0)).toBe(1000);
    expect(backoffMs(50, 250, 10000, () => 0)).toBe(5000);
    const seen = new Set(Array.from({ length: 20 }, () => backoffMs(2)));
    expect(seen.size).toBeGreaterThan(1);
    for (const v of seen) expect(v).toBeGreaterThanOrEqual(500);
  });
});
