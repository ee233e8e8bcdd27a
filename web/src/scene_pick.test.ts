import { describe, expect, it } from "vitest";
import type { PredictionsFrame, SceneMsg, TracksMsg } from "./protocol";
import { boxDistance, clampView, MAX_ZOOM, pickAt, zoomAbout } from "./scene_pick";

const scene = {
  agents: [
    { id: 3, kind: "vehicle", x_m: 10, y_m: 0, yaw_rad: 0, speed_mps: 8.25, length_m: 4.5, width_m: 1.9 },
    { id: 4, kind: "pedestrian", x_m: -5, y_m: 7, yaw_rad: Math.PI / 2, speed_mps: 1.3, length_m: 0.5, width_m: 0.5 },
  ],
} as unknown as SceneMsg;
const tracks = {
  model: "detection",
  version: "6",
  detections: [{ x_m: 10.2, y_m: 0.1, length_m: 4.4, width_m: 1.8, height_m: 1.5, yaw_rad: 0, class: "vehicle", score: 0.91 }],
  tracks: [{ id: 12, x_m: 30, y_m: 30, vx_mps: 3, vy_mps: 4, class: 2, misses: 1 }],
  fused: [],
} as unknown as TracksMsg;
const predictions: PredictionsFrame = {
  t_secs: 0,
  model: "trajectory",
  version: "2",
  agent_ids: [4],
  trajectory: new Float32Array(Array.from({ length: 12 }, (_, i) => [-5, 7 + 0.5 * (i + 1)]).flat()),
  sigma: new Float32Array(24).fill(0.25),
};

describe("boxDistance", () => {
  it("is zero inside a rotated box and the gap outside it", () => {
    expect(boxDistance(10, 0.9, 10, 0, 0, 4.5, 1.9)).toBe(0);
    expect(boxDistance(13.25, 0, 10, 0, 0, 4.5, 1.9)).toBeCloseTo(1);
    // Rotated a quarter turn: its length runs along y.
    expect(boxDistance(0, 2.2, 0, 0, Math.PI / 2, 4.5, 1.9)).toBe(0);
    expect(boxDistance(2.2, 0, 0, 0, Math.PI / 2, 4.5, 1.9)).toBeCloseTo(1.25);
  });
});

describe("pickAt", () => {
  it("names the road user under the cursor, with its kind and speed", () => {
    const p = pickAt(9, 0.5, 0.5, scene, tracks, predictions);
    expect(p?.kind).toBe("agent");
    expect(p?.id).toBe(3);
    expect(p?.text).toBe("agent 3 · vehicle · 8.3 m/s · at (10.0, 0.0) m");
  });
  it("names a track, a detection's class and score, and a prediction's version and horizon", () => {
    expect(pickAt(30.2, 30, 0.5, scene, tracks, predictions)?.text).toBe("track #12 cyc · 5.0 m/s · 1 missed sweeps");
    // Inside the detection's box but nearer its edge than the agent's: the agent still wins
    // inside both (a detection is drawn over its road user).
    expect(pickAt(10.1, 0, 0.5, scene, tracks, predictions)?.kind).toBe("agent");
    expect(pickAt(12.55, 0, 0.25, scene, tracks, predictions)?.text).toMatch(/^detection · vehicle · score 0.91 · .* detection v6$/);
    const pred = pickAt(-5, 13, 0.3, scene, tracks, predictions);
    expect(pred?.text).toBe("prediction for agent 4 · 4.8 s ahead · ±0.5 m across · trajectory v2");
  });
  it("gives the likeliest future's probability when the model predicts several", () => {
    const several: PredictionsFrame = {
      ...predictions,
      version: "3",
      modes: new Float32Array(3 * 24),
      mode_probabilities: new Float32Array([0.62, 0.25, 0.13]),
    };
    expect(pickAt(-5, 13, 0.3, scene, tracks, several)?.text).toBe(
      "prediction for agent 4 · 4.8 s ahead · ±0.5 m across · 62% likely of 3 shown · trajectory v3",
    );
  });
  it("finds nothing out of reach", () => {
    expect(pickAt(50, -50, 1, scene, tracks, predictions)).toBeNull();
    expect(pickAt(0, 0, 1, null, null, null)).toBeNull();
  });
});

describe("zoom and pan", () => {
  it("keeps the point under the cursor in place and stays within bounds", () => {
    const v = zoomAbout({ zoom: 1, cx: 0, cy: 0 }, 2, 20, 10);
    expect(v.zoom).toBe(2);
    // The world point (20, 10) is as far from the centre on screen as before: (20 - cx) * 2 = 20.
    expect((20 - v.cx) * 2).toBeCloseTo(20);
    expect((10 - v.cy) * 2).toBeCloseTo(10);
    expect(zoomAbout(v, 100, 0, 0).zoom).toBe(MAX_ZOOM);
    expect(zoomAbout(v, 0.01, 0, 0)).toEqual({ zoom: 1, cx: 0, cy: 0 });
    expect(clampView({ zoom: 2, cx: 500, cy: -500 })).toEqual({ zoom: 2, cx: 36, cy: -36 });
  });
});
