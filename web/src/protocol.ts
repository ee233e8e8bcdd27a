// Shapes of the server's messages (docs/PROTOCOL.md) and of the worker <-> page messages.

export const STREAMS = [
  "scene",
  "lidar",
  "predictions",
  "tracks",
  "health",
  "evaluation",
  "radar",
  "camera",
  "imu",
  "gps",
] as const;

export const SENSORS = ["lidar", "radar", "camera", "imu", "gps"] as const;
export type SensorName = (typeof SENSORS)[number];
export const FAULTS = ["dropout", "stuck", "spike", "drift", "noise_burst", "latency"] as const;
export const CLASSES = ["vehicle", "pedestrian", "cyclist"] as const;

export interface Pose {
  x_m: number;
  y_m: number;
  z_m: number;
  yaw_rad: number;
}

export interface AgentState {
  id: number;
  kind: string;
  x_m: number;
  y_m: number;
  yaw_rad: number;
  speed_mps: number;
  length_m: number;
  width_m: number;
}

export interface FaultRecord {
  id: number;
  sensor: SensorName;
  kind: string;
  start_secs: number;
  end_secs: number;
  magnitude: number;
}

export interface SceneMsg {
  type: "scene";
  seq: number;
  t_secs: number;
  running: boolean;
  speed: number;
  seed: number;
  ego: AgentState;
  agents: AgentState[];
  signal: { phase: string; arm?: string };
  sensors: { sensor: SensorName; enabled: boolean }[];
  active_faults: FaultRecord[];
}

export interface LidarFrame {
  t_secs: number;
  pose: Pose;
  count: number;
  /** x, y, z, intensity per point, sensor frame. */
  points: Float32Array;
}

export interface PredictionsFrame {
  t_secs: number;
  model: string;
  version: string;
  agent_ids: number[];
  /** count × 12 × 2 world positions. */
  trajectory: Float32Array;
  /** Absent when the model gives no uncertainty (then no band is drawn). */
  sigma?: Float32Array;
  /** From a model of several futures: count × M × 12 × 2 positions, most likely first. */
  modes?: Float32Array;
  /** count × M probabilities of those futures. */
  mode_probabilities?: Float32Array;
}

export interface Detection {
  x_m: number;
  y_m: number;
  length_m: number;
  width_m: number;
  height_m: number;
  yaw_rad: number;
  class: string;
  score: number;
}

export interface Track {
  id: number;
  x_m: number;
  y_m: number;
  vx_mps: number;
  vy_mps: number;
  class: number;
  misses: number;
}

export interface Fused {
  id: number;
  x_m: number;
  y_m: number;
  vx_mps: number;
  vy_mps: number;
  yaw_rad: number;
  pos_var_m2: number;
  nis_lidar?: number | null;
  nis_radar?: number | null;
}

export interface TracksMsg {
  type: "tracks";
  seq: number;
  t_secs: number;
  model: string;
  version: string;
  detections: Detection[];
  tracks: Track[];
  /** The fusion version that fused the tracks (absent when no fusion version is served). */
  fusion_version?: string | null;
  fused: Fused[];
}

export interface SensorHealth {
  sensor: SensorName;
  enabled: boolean;
  score: number;
  alarm: boolean;
  cause: string;
  learning?: boolean;
}

export interface HealthMsg {
  type: "health";
  seq: number;
  t_secs: number;
  /** The served `sensor_health` version that scored this tick. */
  version?: string;
  threshold: number;
  combined: number;
  sensors: SensorHealth[];
  faults: FaultRecord[];
}

export interface ModelEvaluation {
  model: string;
  version: string;
  metrics: Record<string, number>;
  samples: number;
}

export interface EvaluationMsg {
  type: "evaluation";
  t_secs: number;
  models: ModelEvaluation[];
}

/** A set of aligned time series: shared x (scene seconds) and named y columns. */
export interface Series {
  t: Float64Array;
  series: Record<string, Float64Array>;
}

export interface VersionStats {
  model: string;
  version: string;
  ok: number;
  failed: number;
  rejected: number;
  rows: number;
  batches: number;
  in_flight: number;
  queue_depth: number;
  latency_ms: { p50: number | null; p90: number | null; p99: number | null; mean: number | null };
  batch_size: { mean: number | null; p99: number | null };
  online: Record<string, number> | null;
  /** Rows per second since the previous poll (computed by the worker). */
  rows_per_sec?: number;
}

export interface StatsSnapshot {
  t_secs: number;
  models: { name: string; versions: number[] }[];
  versions: VersionStats[];
  routing?: unknown;
}

export interface HistoryVersion {
  version: string;
  loaded: boolean;
  train: { report?: { epochs?: { epoch: number; train_loss?: number; val_ade_m?: number; val_fde_m?: number }[] } } | null;
  online: Record<string, number> | null;
}

/** `GET /api/v1/cluster`: this replica, the leader, Redis and the replicas seen. */
export interface ClusterInfo {
  replica: string;
  leader: string | null;
  leading: boolean;
  redis: "up" | "down" | "off";
  replicas: unknown[];
}

/** The cluster line of the header ("" when the server runs alone). */
export function describeCluster(c: ClusterInfo): { text: string; warn: boolean } {
  if (c.redis === "off") return { text: "", warn: false };
  const leader = c.leading ? "leader: this replica" : c.leader ? `leader: ${c.leader}` : "no leader";
  const n = c.replicas.length;
  const warn = c.redis !== "up" || !c.leader;
  return {
    text: `replica ${c.replica} · ${leader} · Redis ${c.redis} · ${n} replica${n === 1 ? "" : "s"} seen${warn ? " · the scene may be unavailable" : ""}`,
    warn,
  };
}

export interface Frame {
  scene: SceneMsg;
  lidar: LidarFrame;
  predictions: PredictionsFrame;
  tracks: TracksMsg;
  health: HealthMsg;
  healthSeries: Series;
  faultSpans: { sensor: number; start: number; end: number }[];
  evaluation: EvaluationMsg;
  evalSeries: Series;
  stats: StatsSnapshot;
  latencySeries: Series;
  history: Record<string, HistoryVersion[]>;
  routing: unknown;
}

export type ConnState = "connecting" | "open" | "closed";

export type ToWorker =
  | { kind: "start"; url: string; base: string }
  | { kind: "pull" }
  | { kind: "command"; id: number; command: Record<string, unknown> }
  | { kind: "refresh" }
  /** Look at scene time `t` of the timeline, or live (null). */
  | { kind: "view"; t: number | null };

export type FromWorker =
  /** `viewing`: the scene time the frame shows, or null when it is live. */
  | { kind: "frame"; frame: Partial<Frame>; lastMessageAt: number; viewing: number | null }
  /** What the timeline spans (scene seconds) and holds (bytes), and what the view shows. */
  | { kind: "timeline"; oldest: number; newest: number; viewing: number | null; bytes: number; lastMessageAt: number }
  | { kind: "conn"; state: ConnState; rttMs: number | null; attempt: number; dropped: number; lastMessageAt: number }
  | { kind: "reply"; id: number; ok: boolean; result?: unknown; error?: string }
  | { kind: "notice"; level: string; message: string }
  /** The cluster's state, live even while the view is paused. */
  | { kind: "cluster"; cluster: ClusterInfo };
