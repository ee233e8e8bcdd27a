import { describe, expect, it } from "vitest";
import { describeDecision, policyBody } from "./lifecycle";

describe("policyBody", () => {
  it("builds each policy's request", () => {
    expect(policyBody("newest", {}, {})).toEqual({ policy: "newest" });
    expect(policyBody("fixed", { version: "2" }, {})).toEqual({ policy: "fixed", version: "2" });
    expect(policyBody("split", {}, { "1": 30, "2": 70 })).toEqual({ policy: "split", weights: { "1": 30, "2": 70 } });
    // An empty choice ("newest", "serving now") is left to the server's default.
    expect(policyBody("shadow", { primary: "", candidate: "2" }, {})).toEqual({ policy: "shadow", candidate: "2" });
    expect(policyBody("shadow", { primary: "1", candidate: "2" }, {})).toEqual({ policy: "shadow", primary: "1", candidate: "2" });
    expect(policyBody("canary", { incumbent: "", candidate: "2" }, {})).toEqual({ policy: "canary", candidate: "2" });
  });
});

describe("describeDecision", () => {
  it("keeps long details and evidence short", () => {
    const line = describeDecision({ model: "m", action: "step", detail: "x".repeat(500), evidence: { e: "y".repeat(500) }, unix_secs: 0 });
    expect(line).toMatch(/ step: x+… — evidence \{"e":"y+…$/);
    expect(line.length).toBeLessThan(420);
  });
});
