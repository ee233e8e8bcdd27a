import { describe, expect, it } from "vitest";
import { describeCluster } from "./protocol";

describe("describeCluster", () => {
  it("says nothing for a server running alone", () => {
    expect(describeCluster({ replica: "standalone", leader: "standalone", leading: true, redis: "off", replicas: [] })).toEqual({
      text: "",
      warn: false,
    });
  });
  it("names the replica, the leader, Redis and the replicas seen", () => {
    expect(describeCluster({ replica: "b", leader: "a", leading: false, redis: "up", replicas: [{}, {}] })).toEqual({
      text: "replica b · leader: a · Redis up · 2 replicas seen",
      warn: false,
    });
    expect(describeCluster({ replica: "a", leader: "a", leading: true, redis: "up", replicas: [{}] }).text).toBe(
      "replica a · leader: this replica · Redis up · 1 replica seen",
    );
  });
  it("warns when Redis is down or no replica leads", () => {
    expect(describeCluster({ replica: "b", leader: null, leading: false, redis: "down", replicas: [] })).toEqual({
      text: "replica b · no leader · Redis down · 0 replicas seen · the scene may be unavailable",
      warn: true,
    });
  });
});
