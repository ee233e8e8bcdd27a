// The server's messages checked at the boundary: each stream message is checked for the fields
// and types the page reads before it is used; one that does not match is dropped (and counted),
// never cast and drawn half-formed.

import { f32, type Value } from "./msgpack";
import type { EvaluationMsg, HealthMsg, LidarFrame, PredictionsFrame, SceneMsg, TracksMsg } from "./protocol";

type Obj = { [key: string]: Value };

const isObj = (v: unknown): v is Obj =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isNum = (v: unknown): v is number => typeof v === "number";
const isStr = (v: unknown): v is string => typeof v === "string";
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const nums = (o: Obj, keys: string[]): boolean => keys.every((k) => isNum(o[k]));
const list = (v: unknown, each: (x: unknown) => boolean): boolean => Array.isArray(v) && v.every(each);
const optional = (v: unknown, check: (x: unknown) => boolean): boolean => v === undefined || v === null || check(v);

const AGENT = ["id", "x_m", "y_m", "yaw_rad", "speed_mps", "length_m", "width_m"];
const agent = (a: unknown): boolean => isObj(a) && isStr(a.kind) && nums(a, AGENT);
const fault = (f: unknown): boolean =>
  isObj(f) && isStr(f.sensor) && isStr(f.kind) && nums(f, ["id", "start_secs", "end_secs", "magnitude"]);

export function asScene(m: Obj): SceneMsg | null {
  const ok =
    nums(m, ["seq", "t_secs", "speed", "seed"]) &&
    isBool(m.running) &&
    agent(m.ego) &&
    list(m.agents, agent) &&
    isObj(m.signal) &&
    isStr(m.signal.phase) &&
    list(m.sensors, (s) => isObj(s) && isStr(s.sensor) && isBool(s.enabled)) &&
    list(m.active_faults, fault);
  return ok ? (m as unknown as SceneMsg) : null;
}

export function asTracks(m: Obj): TracksMsg | null {
  const ok =
    nums(m, ["t_secs"]) &&
    isStr(m.model) &&
    isStr(m.version) &&
    list(m.detections, (d) => isObj(d) && isStr(d.class) && nums(d, ["x_m", "y_m", "length_m", "width_m", "height_m", "yaw_rad", "score"])) &&
    list(m.tracks, (t) => isObj(t) && nums(t, ["id", "x_m", "y_m", "vx_mps", "vy_mps", "class", "misses"])) &&
    list(
      m.fused,
      (f) =>
        isObj(f) &&
        nums(f, ["id", "x_m", "y_m", "vx_mps", "vy_mps", "yaw_rad", "pos_var_m2"]) &&
        optional(f.nis_lidar, isNum) &&
        optional(f.nis_radar, isNum),
    ) &&
    optional(m.fusion_version, isStr);
  return ok ? (m as unknown as TracksMsg) : null;
}

export function asHealth(m: Obj): HealthMsg | null {
  const ok =
    nums(m, ["t_secs", "threshold", "combined"]) &&
    list(m.sensors, (s) => isObj(s) && isStr(s.sensor) && isBool(s.enabled) && isNum(s.score) && isBool(s.alarm) && isStr(s.cause)) &&
    list(m.faults, fault) &&
    optional(m.version, isStr);
  return ok ? (m as unknown as HealthMsg) : null;
}

export function asEvaluation(m: Obj): EvaluationMsg | null {
  const ok =
    isNum(m.t_secs) &&
    list(
      m.models,
      (x) =>
        isObj(x) && isStr(x.model) && isStr(x.version) && isNum(x.samples) && isObj(x.metrics) && Object.values(x.metrics).every(isNum),
    );
  return ok ? (m as unknown as EvaluationMsg) : null;
}

export function asLidar(m: Obj): LidarFrame | null {
  const pose = m.world_from_sensor;
  if (!isNum(m.t_secs) || !isObj(pose) || !nums(pose, ["x_m", "y_m", "z_m", "yaw_rad"])) return null;
  if (!(m.points instanceof Uint8Array) && !Array.isArray(m.points)) return null;
  const points = f32(m.points);
  if (points.length % 4 !== 0) return null;
  return { t_secs: m.t_secs, pose: pose as unknown as LidarFrame["pose"], count: points.length / 4, points };
}

/** A predictions message whose arrays agree with its agent count (12 steps of x, y each). */
export function asPredictions(m: Obj): PredictionsFrame | null {
  if (!isNum(m.t_secs) || !isStr(m.model) || !isStr(m.version) || !list(m.agent_ids, isNum)) return null;
  const n = (m.agent_ids as number[]).length;
  const per = 12 * 2;
  const bulk = (v: Value | undefined): Float32Array | undefined | null => {
    if (v === undefined || v === null) return undefined;
    return v instanceof Uint8Array || Array.isArray(v) ? f32(v) : null;
  };
  const trajectory = bulk(m.trajectory);
  const sigma = bulk(m.sigma);
  const modes = bulk(m.modes);
  const probs = bulk(m.mode_probabilities);
  if (!trajectory || trajectory.length !== n * per) return null;
  if (sigma === null || (sigma && sigma.length !== n * per)) return null;
  if (modes === null || probs === null || !modes !== !probs) return null;
  if (modes && probs && (n === 0 ? modes.length !== 0 || probs.length !== 0 : modes.length !== probs.length * per || probs.length % n !== 0))
    return null;
  return {
    t_secs: m.t_secs,
    model: m.model,
    version: m.version,
    agent_ids: m.agent_ids as number[],
    trajectory,
    sigma,
    modes,
    mode_probabilities: probs,
  };
}
