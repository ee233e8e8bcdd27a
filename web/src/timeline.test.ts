import { describe, expect, it } from "vitest";
import type { SceneMsg } from "./protocol";
import { packScene, SceneTimeline, thinLidar, TimeRing, TIMELINE_BUDGET, unpackScene } from "./timeline";
import { describeView } from "./timeline_bar";

function scene(t: number, n: number): SceneMsg {
  const agent = (id: number) => ({
    id,
    kind: id % 3 === 0 ? "pedestrian" : "vehicle",
    x_m: id + t,
    y_m: -id,
    yaw_rad: 0.5,
    speed_mps: 3,
    length_m: 4.5,
    width_m: 1.8,
  });
  return {
    type: "scene",
    seq: Math.round(t * 10),
    t_secs: t,
    running: true,
    speed: 1,
    seed: 7,
    ego: agent(0),
    agents: Array.from({ length: n }, (_, i) => agent(i + 1)),
    signal: { phase: "ns_green" },
    sensors: [],
    active_faults: [],
  };
}

describe("TimeRing", () => {
  it("samples no closer than its interval and finds the newest value at or before a time", () => {
    const r = new TimeRing<number>(1, 300, 1e9);
    for (let t = 0; t < 10; t += 0.25) r.offer(t, () => ({ value: t, bytes: 1 }));
    expect(r.length).toBe(10);
    expect(r.at(-1)).toBeNull();
    expect(r.at(0)).toBe(0);
    expect(r.at(4.9)).toBe(4);
    expect(r.at(5)).toBe(5);
    expect(r.at(1e9)).toBe(9);
    expect([r.oldest(), r.newest()]).toEqual([0, 9]);
  });

  it("forgets what is older than its span and keeps under its byte budget", () => {
    const r = new TimeRing<number>(0, 60, 1e9);
    for (let t = 0; t <= 1000; t++) r.offer(t, () => ({ value: t, bytes: 10 }));
    expect(r.oldest()).toBe(940);
    expect(r.bytes).toBe(61 * 10);
    const b = new TimeRing<number>(0, 1e9, 1000);
    for (let t = 0; t < 10000; t++) b.offer(t, () => ({ value: t, bytes: 100 }));
    expect(b.bytes).toBeLessThanOrEqual(1000);
    expect(b.length).toBe(10);
    expect(b.at(9999)).toBe(9999);
    b.clear();
    expect([b.length, b.bytes, b.at(5)]).toEqual([0, 0, null]);
  });
});

describe("SceneTimeline", () => {
  it("gives back the scene as it was, packed and unpacked", () => {
    const s = scene(12.5, 5);
    const back = unpackScene(packScene(s).value);
    expect(back.agents.map((a) => a.id)).toEqual([1, 2, 3, 4, 5]);
    expect(back.agents[2]?.kind).toBe("pedestrian");
    expect(back.agents[1]?.x_m).toBeCloseTo(14.5, 4);
    expect(back.t_secs).toBe(12.5);
    expect(back.signal).toEqual(s.signal);
  });

  it("thins a lidar sweep to the points it may keep", () => {
    const count = 10001;
    const points = new Float32Array(count * 4).map((_, i) => i);
    const thin = thinLidar({ t_secs: 1, pose: { x_m: 0, y_m: 0, z_m: 0, yaw_rad: 0 }, count, points }, 2048);
    expect(thin.value.count).toBeLessThanOrEqual(2048);
    expect(thin.value.points.length).toBe(thin.value.count * 4);
    expect(Array.from(thin.value.points.subarray(0, 8))).toEqual([0, 1, 2, 3, 20, 21, 22, 23]);
  });

  it("stays within its budget over ten minutes of a crowded scene, and scrubs to any kept time", () => {
    const tl = new SceneTimeline();
    const sweep = new Float32Array(30000 * 4);
    for (let i = 0; i < 6000; i++) {
      const t = i * 0.1;
      tl.offerScene(scene(t, 250));
      tl.offerLidar({ t_secs: t, pose: { x_m: 0, y_m: 0, z_m: 0, yaw_rad: 0 }, count: 30000, points: sweep });
      tl.offerPredictions({
        t_secs: t,
        model: "trajectory",
        version: "3",
        agent_ids: Array.from({ length: 250 }, (_, k) => k),
        trajectory: new Float32Array(250 * 24),
        sigma: new Float32Array(250 * 24),
        modes: new Float32Array(250 * 72),
        mode_probabilities: new Float32Array(250 * 3),
      });
    }
    expect(tl.bytes).toBeLessThanOrEqual(TIMELINE_BUDGET);
    const { oldest, newest } = tl.range();
    expect(newest).toBeGreaterThan(599.5);
    expect(newest - oldest).toBeLessThanOrEqual(300);
    const m = tl.at(newest - 30.05);
    const shown = m.scene?.t_secs ?? NaN;
    expect(shown).toBeLessThanOrEqual(newest - 30.05);
    expect(shown).toBeGreaterThan(newest - 30.05 - 0.21);
    expect(m.scene?.agents.length).toBe(250);
    expect(m.lidar?.count).toBeLessThanOrEqual(2048);
    expect(m.predictions?.t_secs).toBeLessThanOrEqual(newest - 30.05);
    expect(tl.at(oldest - 1).scene).toBeNull();
  });

  it("says where the view is", () => {
    expect(describeView(10, 250, null, 4.2e6)).toBe("live · 4 min 00 s kept to scrub back (4.2 MB)");
    expect(describeView(10, 250, 200, 4.2e6)).toBe("paused at scene 200.0 s · 50 s behind live");
    expect(describeView(NaN, NaN, null, 0)).toBe("live · nothing yet kept to scrub back (0.0 MB)");
  });
});
