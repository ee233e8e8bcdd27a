import { describe, expect, it } from "vitest";
import { trackLabel } from "./labels";

describe("trackLabel", () => {
  it("shows the id and the track's class", () => {
    expect(trackLabel({ id: 4, class: 0 })).toBe("#4 veh");
    expect(trackLabel({ id: 12, class: 2 })).toBe("#12 cyc");
  });
  it("names any other class 'oth'", () => {
    expect(trackLabel({ id: 7, class: 3 })).toBe("#7 oth");
    expect(trackLabel({ id: 7, class: -1 })).toBe("#7 oth");
  });
});
