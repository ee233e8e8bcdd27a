// The timeline: the last five minutes of what the scene view and the charts draw, kept in the
// dashboard's worker under a fixed byte budget, so one viewer can pause, scrub back and return
// to live while the scene runs on for everyone else.

import type { AgentState, HealthMsg, LidarFrame, PredictionsFrame, SceneMsg, TracksMsg } from "./protocol";

/** How far back the view can go, in scene seconds. */
export const TIMELINE_SECS = 300;

interface Entry<T> {
  t: number;
  value: T;
  bytes: number;
}

/**
 * Values ordered by scene time: one is kept when it comes at least `every` seconds after the
 * last kept one; the oldest go when they are more than `span` seconds older than the newest or
 * when the kept values' bytes pass `budget`.
 */
export class TimeRing<T> {
  private items: Entry<T>[] = [];
  private head = 0;
  bytes = 0;

  constructor(
    readonly every: number,
    readonly span: number,
    readonly budget: number,
  ) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Keeps what `make` builds when the sampling interval allows; returns whether it kept it. */
  offer(t: number, make: () => { value: T; bytes: number }): boolean {
    const last = this.items[this.items.length - 1];
    if (this.length > 0 && last && t < last.t + this.every - 1e-6) return false;
    const { value, bytes } = make();
    this.items.push({ t, value, bytes });
    this.bytes += bytes;
    while (this.length > 1) {
      const first = this.items[this.head] as Entry<T>;
      if (first.t >= t - this.span && this.bytes <= this.budget) break;
      this.bytes -= first.bytes;
      this.items[this.head] = undefined as unknown as Entry<T>;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  /** The newest value kept at or before `t` (null when none is that old). */
  at(t: number): T | null {
    let lo = this.head;
    let hi = this.items.length - 1;
    if (hi < lo || (this.items[lo] as Entry<T>).t > t) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.items[mid] as Entry<T>).t <= t) lo = mid;
      else hi = mid - 1;
    }
    return (this.items[lo] as Entry<T>).value;
  }

  oldest(): number {
    return this.length ? (this.items[this.head] as Entry<T>).t : NaN;
  }

  newest(): number {
    return this.length ? (this.items[this.items.length - 1] as Entry<T>).t : NaN;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}

/** A scene message with its road users packed eight numbers each (a fraction of the objects' size). */
export interface PackedScene {
  head: Omit<SceneMsg, "agents">;
  kinds: string[];
  /** id, kind index, x, y, yaw, speed, length, width per agent. */
  agents: Float32Array;
}

export function packScene(s: SceneMsg): { value: PackedScene; bytes: number } {
  const { agents, ...head } = s;
  const kinds: string[] = [];
  const data = new Float32Array(agents.length * 8);
  agents.forEach((a, i) => {
    let k = kinds.indexOf(a.kind);
    if (k < 0) k = kinds.push(a.kind) - 1;
    data.set([a.id, k, a.x_m, a.y_m, a.yaw_rad, a.speed_mps, a.length_m, a.width_m], i * 8);
  });
  // The head (ego, signal, sensors, faults) is a few hundred bytes of objects.
  return { value: { head, kinds, agents: data }, bytes: data.byteLength + 600 + 160 * head.active_faults.length };
}

export function unpackScene(p: PackedScene): SceneMsg {
  const agents: AgentState[] = [];
  for (let i = 0; i < p.agents.length; i += 8) {
    const a = p.agents;
    agents.push({
      id: a[i] as number,
      kind: p.kinds[a[i + 1] as number] ?? "unknown",
      x_m: a[i + 2] as number,
      y_m: a[i + 3] as number,
      yaw_rad: a[i + 4] as number,
      speed_mps: a[i + 5] as number,
      length_m: a[i + 6] as number,
      width_m: a[i + 7] as number,
    });
  }
  return { ...p.head, agents };
}

/** A lidar sweep thinned to at most `max` points (every k-th), in a new buffer. */
export function thinLidar(l: LidarFrame, max: number): { value: LidarFrame; bytes: number } {
  const step = Math.max(1, Math.ceil(l.count / max));
  const count = Math.ceil(l.count / step);
  const points = new Float32Array(count * 4);
  for (let i = 0, j = 0; i < l.count; i += step, j++) points.set(l.points.subarray(i * 4, i * 4 + 4), j * 4);
  return { value: { t_secs: l.t_secs, pose: l.pose, count, points }, bytes: points.byteLength + 100 };
}

/** A copy of a predictions frame (the live one's buffers are handed to the page). */
export function copyPredictions(p: PredictionsFrame): { value: PredictionsFrame; bytes: number } {
  const value: PredictionsFrame = {
    ...p,
    agent_ids: [...p.agent_ids],
    trajectory: p.trajectory.slice(),
    sigma: p.sigma?.slice(),
    modes: p.modes?.slice(),
    mode_probabilities: p.mode_probabilities?.slice(),
  };
  const bytes = [value.trajectory, value.sigma, value.modes, value.mode_probabilities].reduce(
    (n, a) => n + (a?.byteLength ?? 0),
    200 + 16 * p.agent_ids.length,
  );
  return { value, bytes };
}

/** Bytes a tracks message holds, roughly (each object is a dozen fields). */
export function tracksBytes(t: TracksMsg): number {
  return 300 + 200 * (t.detections.length + t.tracks.length + t.fused.length);
}

/** What the scene view needs at one time of the timeline. */
export interface Moment {
  scene: SceneMsg | null;
  lidar: LidarFrame | null;
  predictions: PredictionsFrame | null;
  tracks: TracksMsg | null;
  health: HealthMsg | null;
}

/** Lidar points kept per sweep, and sweeps kept per second: the timeline's lidar is sparser than live. */
export const LIDAR_POINTS = 2048;
export const LIDAR_EVERY_SECS = 2;

/** The scene view's part of the timeline, 5 minutes deep, within TIMELINE_BUDGET bytes. */
export class SceneTimeline {
  readonly scene = new TimeRing<PackedScene>(0.2, TIMELINE_SECS, 3e6);
  readonly lidar = new TimeRing<LidarFrame>(LIDAR_EVERY_SECS, TIMELINE_SECS, 5e6);
  readonly predictions = new TimeRing<PredictionsFrame>(1, TIMELINE_SECS, 6e6);
  readonly tracks = new TimeRing<TracksMsg>(0.5, TIMELINE_SECS, 3e6);
  readonly health = new TimeRing<HealthMsg>(0.5, TIMELINE_SECS, 0.5e6);

  offerScene(s: SceneMsg): void {
    this.scene.offer(s.t_secs, () => packScene(s));
  }
  offerLidar(l: LidarFrame): void {
    this.lidar.offer(l.t_secs, () => thinLidar(l, LIDAR_POINTS));
  }
  offerPredictions(p: PredictionsFrame): void {
    this.predictions.offer(p.t_secs, () => copyPredictions(p));
  }
  offerTracks(t: TracksMsg): void {
    this.tracks.offer(t.t_secs, () => ({ value: t, bytes: tracksBytes(t) }));
  }
  offerHealth(h: HealthMsg): void {
    this.health.offer(h.t_secs, () => ({ value: h, bytes: 400 + 200 * (h.sensors.length + h.faults.length) }));
  }

  /** The scene view as it was at scene time `t`. */
  at(t: number): Moment {
    const s = this.scene.at(t);
    return {
      scene: s ? unpackScene(s) : null,
      lidar: this.lidar.at(t),
      predictions: this.predictions.at(t),
      tracks: this.tracks.at(t),
      health: this.health.at(t),
    };
  }

  /** The span the view can be scrubbed over. */
  range(): { oldest: number; newest: number } {
    return { oldest: this.scene.oldest(), newest: this.scene.newest() };
  }

  get bytes(): number {
    return this.scene.bytes + this.lidar.bytes + this.predictions.bytes + this.tracks.bytes + this.health.bytes;
  }

  clear(): void {
    for (const r of [this.scene, this.lidar, this.predictions, this.tracks, this.health]) r.clear();
  }
}

/** The most the timeline holds, in bytes (the sum of its parts' budgets). */
export const TIMELINE_BUDGET = 17.5e6;
