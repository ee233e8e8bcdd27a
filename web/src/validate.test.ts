import { describe, expect, it } from "vitest";
import { asEvaluation, asHealth, asLidar, asPredictions, asScene, asTracks } from "./validate";

const agent = (id: number) => ({ id, kind: "vehicle", x_m: 1, y_m: 2, yaw_rad: 0, speed_mps: 3, length_m: 4, width_m: 2 });
const scene = () => ({
  type: "scene",
  seq: 1,
  t_secs: 2.5,
  running: true,
  speed: 1,
  seed: 42,
  ego: agent(0),
  agents: [agent(1), agent(2)],
  signal: { phase: "ns_green" },
  sensors: [{ sensor: "lidar", enabled: true }],
  active_faults: [],
});
const bytes = (a: number[]) => new Uint8Array(new Float32Array(a).buffer);

describe("the boundary", () => {
  it("passes well-formed messages and refuses ones with a field missing or of the wrong type", () => {
    expect(asScene(scene())?.agents.length).toBe(2);
    expect(asScene({ ...scene(), t_secs: "2.5" })).toBeNull();
    expect(asScene({ ...scene(), agents: [agent(1), { ...agent(2), kind: 7 }] })).toBeNull();
    expect(asScene({ ...scene(), signal: null })).toBeNull();
    // A `__proto__`-shaped or array payload is no message.
    expect(asScene({ ...scene(), agents: { length: 1 } })).toBeNull();

    const tracks = { t_secs: 1, model: "detection", version: "6", detections: [], tracks: [], fused: [] };
    expect(asTracks(tracks)).not.toBeNull();
    expect(asTracks({ ...tracks, fused: [{ id: 1, x_m: 0, y_m: 0, vx_mps: 0, vy_mps: 0, yaw_rad: 0, pos_var_m2: 1, nis_lidar: null }] })).not.toBeNull();
    expect(asTracks({ ...tracks, tracks: [{ id: 1 }] })).toBeNull();

    const health = { t_secs: 1, threshold: 0.99, combined: 0.1, sensors: [{ sensor: "gps", enabled: true, score: 0.1, alarm: false, cause: "" }], faults: [] };
    expect(asHealth(health)).not.toBeNull();
    expect(asHealth({ ...health, sensors: [{ sensor: "gps", enabled: true, score: "high", alarm: false, cause: "" }] })).toBeNull();

    const evaluation = { t_secs: 3, models: [{ model: "trajectory", version: "3", metrics: { ade_m: 0.5 }, samples: 10 }] };
    expect(asEvaluation(evaluation)).not.toBeNull();
    expect(asEvaluation({ ...evaluation, models: [{ model: "trajectory", version: 3, metrics: {}, samples: 1 }] })).toBeNull();
  });

  it("refuses lidar and predictions whose arrays do not fit their counts", () => {
    const pose = { x_m: 0, y_m: 0, z_m: 1.8, yaw_rad: 0 };
    expect(asLidar({ t_secs: 1, world_from_sensor: pose, points: bytes([1, 2, 3, 4, 5, 6, 7, 8]) })?.count).toBe(2);
    expect(asLidar({ t_secs: 1, world_from_sensor: pose, points: bytes([1, 2, 3]) })).toBeNull();
    expect(asLidar({ t_secs: 1, points: bytes([1, 2, 3, 4]) })).toBeNull();

    const one = Array.from({ length: 24 }, (_, i) => i);
    const p = { t_secs: 1, model: "trajectory", version: "3", agent_ids: [5], trajectory: bytes(one), sigma: bytes(one) };
    expect(asPredictions(p)?.trajectory.length).toBe(24);
    expect(asPredictions({ ...p, agent_ids: [5, 6] })).toBeNull();
    expect(asPredictions({ ...p, sigma: bytes([1]) })).toBeNull();
    const modes = { modes: bytes([...one, ...one, ...one]), mode_probabilities: bytes([0.5, 0.3, 0.2]) };
    expect(asPredictions({ ...p, ...modes })?.mode_probabilities?.length).toBe(3);
    expect(asPredictions({ ...p, modes: modes.modes })).toBeNull();
    expect(asPredictions({ ...p, ...modes, mode_probabilities: bytes([0.5, 0.5]) })).toBeNull();
    expect(asPredictions({ ...p, trajectory: "none" })).toBeNull();
  });
});
