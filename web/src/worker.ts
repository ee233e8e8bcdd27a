// The dashboard's worker: owns the WebSocket, decodes MessagePack, keeps the time series, polls
// the serving statistics, and hands the page at most one batch of updates per animation frame
// (the page asks with "pull"). Bulk arrays become Float32Arrays whose buffers are transferred to
// the page, not copied.

/// <reference lib="webworker" />
import { getJson } from "./http";
import { backoffMs, Coalescer } from "./coalesce";
import { decode, encode, type Value } from "./msgpack";
import type {
  ClusterInfo,
  ConnState,
  EvaluationMsg,
  Frame,
  FromWorker,
  HealthMsg,
  HistoryVersion,
  StatsSnapshot,
  ToWorker,
} from "./protocol";
import { SENSORS, STREAMS } from "./protocol";
import { SeriesTable } from "./ring";
import { copyPredictions, SceneTimeline, TIMELINE_SECS } from "./timeline";
import { asEvaluation, asHealth, asLidar, asPredictions, asScene, asTracks } from "./validate";

declare const self: DedicatedWorkerGlobalScope;

const HEALTH_WINDOW = TIMELINE_SECS * 10; // 5 min of 10 Hz ticks (the timeline's depth)
const HEALTH_VIEW_SECS = 60; // the health chart shows the last minute
const EVAL_WINDOW = 600; // 10 min of 1 s samples
const LATENCY_WINDOW = 300; // 10 min of 2 s polls

const pending = new Coalescer<Frame>();
const health = new SeriesTable(HEALTH_WINDOW);
const evals = new SeriesTable(EVAL_WINDOW);
const latency = new SeriesTable(LATENCY_WINDOW);
const faults = new Map<number, { sensor: number; start: number; end: number }>();
const timeline = new SceneTimeline();
/** The scene time this viewer looks at (null: live); the scene runs on for everyone else. */
let viewing: number | null = null;
/** A frame of the viewed time is owed to the page (after a seek), or the live state (after returning). */
let seekOwed = false;
let catchUpOwed = false;
let timelinePostedAt = 0;
let lastT = -Infinity;
let ws: WebSocket | null = null;
let url = "";
let base = "";
let attempt = 0;
let state: ConnState = "connecting";
let rttMs: number | null = null;
let dropped = 0;
let lastMessageAt = 0;
let pingSent = new Map<string, number>();
let nextId = 1;
const pendingReplies = new Map<number, number>(); // ws id -> page id
let prevStats: { at: number; rows: Map<string, number> } | null = null;

function post(m: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(m, transfer);
}

function connState(s: ConnState): void {
  state = s;
  post({ kind: "conn", state, rttMs, attempt, dropped, lastMessageAt });
}

function send(msg: Record<string, Value>): boolean {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(encode(msg));
  return true;
}

function connect(): void {
  connState("connecting");
  let sock: WebSocket;
  try {
    sock = new WebSocket(url, ["waypoint.v1.msgpack"]);
  } catch {
    scheduleReconnect();
    return;
  }
  ws = sock;
  sock.binaryType = "arraybuffer";
  sock.onopen = () => {
    attempt = 0;
    connState("open");
  };
  sock.onmessage = (ev: MessageEvent) => {
    lastMessageAt = Date.now();
    let m: Value;
    try {
      m = decode(ev.data as ArrayBuffer);
    } catch (e) {
      console.warn("undecodable message", e);
      return;
    }
    if (m && typeof m === "object" && !Array.isArray(m) && !(m instanceof Uint8Array)) onMessage(m);
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    for (const [, pageId] of pendingReplies) post({ kind: "reply", id: pageId, ok: false, error: "connection closed" });
    pendingReplies.clear();
    connState("closed");
    scheduleReconnect();
  };
  sock.onerror = () => {
    // onclose follows and reconnects.
  };
}

function scheduleReconnect(): void {
  const delay = backoffMs(attempt++);
  setTimeout(connect, delay);
}

type Obj = { [key: string]: Value };

/** Messages dropped because they did not match the protocol, per type (warned once each). */
const malformed = new Map<string, number>();
function checked<T>(type: string, value: T | null): T | null {
  if (value === null) {
    const n = (malformed.get(type) ?? 0) + 1;
    malformed.set(type, n);
    if (n === 1) console.warn(`dropped a ${type} message that does not match the protocol (docs/PROTOCOL.md)`);
  }
  return value;
}

function onMessage(m: Obj): void {
  switch (m.type) {
    case "hello":
      send({ type: "subscribe", id: 0, streams: [...STREAMS] });
      break;
    case "scene": {
      const s = checked("scene", asScene(m));
      if (!s) break;
      if (s.t_secs < lastT - 1e-6) resetSeries();
      lastT = s.t_secs;
      timeline.offerScene(s);
      pending.set("scene", s);
      postTimeline(false);
      break;
    }
    case "lidar": {
      const lidar = checked("lidar", asLidar(m));
      if (!lidar) break;
      timeline.offerLidar(lidar);
      pending.set("lidar", lidar);
      break;
    }
    case "predictions": {
      const p = checked("predictions", asPredictions(m));
      if (!p) break;
      timeline.offerPredictions(p);
      pending.set("predictions", p);
      break;
    }
    case "tracks": {
      const t = checked("tracks", asTracks(m));
      if (!t) break;
      timeline.offerTracks(t);
      pending.set("tracks", t);
      break;
    }
    case "health": {
      const h = checked("health", asHealth(m));
      if (h) onHealth(h);
      break;
    }
    case "evaluation": {
      const e = checked("evaluation", asEvaluation(m));
      if (e) onEvaluation(e);
      break;
    }
    case "pong": {
      const sent = pingSent.get(String(m.id));
      if (sent !== undefined) {
        rttMs = performance.now() - sent;
        pingSent.delete(String(m.id));
        post({ kind: "conn", state, rttMs, attempt, dropped, lastMessageAt });
      }
      break;
    }
    case "dropped":
      dropped = m.total as number;
      break;
    case "notice":
      post({ kind: "notice", level: String(m.level), message: String(m.message) });
      break;
    case "reply":
    case "error": {
      const id = m.id as number;
      const pageId = pendingReplies.get(id);
      if (pageId === undefined) break;
      pendingReplies.delete(id);
      if (m.type === "reply") post({ kind: "reply", id: pageId, ok: true, result: m.result });
      else post({ kind: "reply", id: pageId, ok: false, error: `${m.code as string}: ${m.message as string}` });
      break;
    }
    default:
      break; // radar, camera, imu, gps: counted by the health monitor on the server
  }
}

function resetSeries(): void {
  health.clear();
  evals.clear();
  latency.clear();
  faults.clear();
  timeline.clear();
  if (viewing !== null) {
    viewing = null;
    catchUpOwed = true;
  }
}

/** Tells the page what the timeline spans (at most twice a second unless `now`). */
function postTimeline(now: boolean): void {
  const at = Date.now();
  if (!now && at - timelinePostedAt < 500) return;
  timelinePostedAt = at;
  post({ kind: "timeline", ...timeline.range(), viewing, bytes: timeline.bytes, lastMessageAt });
}

/** The fault spans that overlap the health chart's window ending at `to`. */
function spansUpTo(to: number): Frame["faultSpans"] {
  return [...faults.values()].filter((f) => f.start <= to && f.end >= to - HEALTH_VIEW_SECS);
}

/** Everything the page draws, as it was at scene time `t` (copies: the page may keep them). */
function frameAt(at: number): Partial<Frame> {
  const t = Number.isFinite(at) ? at : lastT;
  const m = timeline.at(t);
  const f: Partial<Frame> = {
    healthSeries: health.snapshot(t - HEALTH_VIEW_SECS, t),
    faultSpans: spansUpTo(t),
    evalSeries: evals.snapshot(-Infinity, t),
    latencySeries: latency.snapshot(-Infinity, t),
  };
  if (m.scene) f.scene = m.scene;
  if (m.lidar) f.lidar = { ...m.lidar, points: m.lidar.points.slice() };
  if (m.predictions) f.predictions = copyPredictions(m.predictions).value;
  if (m.tracks) f.tracks = m.tracks;
  if (m.health) f.health = m.health;
  return f;
}

function onHealth(h: HealthMsg): void {
  const row: Record<string, number> = { threshold: h.threshold };
  for (const s of h.sensors) row[s.sensor] = s.enabled ? s.score : NaN;
  health.push(h.t_secs, row);
  timeline.offerHealth(h);
  for (const f of h.faults) {
    faults.set(f.id, { sensor: SENSORS.indexOf(f.sensor), start: f.start_secs, end: f.end_secs });
  }
  const oldest = health.t.at(0);
  for (const [id, f] of faults) if (f.end < oldest) faults.delete(id);
  pending.set("health", h);
  pending.set("healthSeries", health.snapshot(h.t_secs - HEALTH_VIEW_SECS));
  pending.set("faultSpans", spansUpTo(h.t_secs));
}

function onEvaluation(e: EvaluationMsg): void {
  const row: Record<string, number> = {};
  for (const m of e.models) for (const [k, v] of Object.entries(m.metrics)) row[`${m.model}/${m.version}/${k}`] = v;
  evals.push(e.t_secs, row);
  pending.set("evaluation", e);
  pending.set("evalSeries", evals.snapshot());
}


async function pollStats(): Promise<void> {
  const s = await getJson<StatsSnapshot>(base, "/api/v1/stats");
  if (!s) return;
  const now = performance.now();
  const rows = new Map<string, number>();
  const lat: Record<string, number> = {};
  for (const v of s.versions) {
    const key = `${v.model}/${v.version}`;
    rows.set(key, v.rows);
    const before = prevStats?.rows.get(key);
    if (prevStats && before !== undefined) v.rows_per_sec = ((v.rows - before) * 1000) / (now - prevStats.at);
    if (v.latency_ms.p99 !== null) lat[key] = v.latency_ms.p99;
  }
  prevStats = { at: now, rows };
  // On the scene's clock, like every other chart (nothing new while the scene is paused).
  const latest = latency.t.last();
  if (!(s.t_secs <= latest)) latency.push(s.t_secs, lat);
  pending.set("stats", s);
  pending.set("latencySeries", latency.snapshot());
  const routing = await getJson<unknown>(base, "/api/v1/routing");
  pending.set("routing", routing);
  const cluster = await getJson<ClusterInfo>(base, "/api/v1/cluster");
  if (cluster) post({ kind: "cluster", cluster });
}

async function pollHistory(): Promise<void> {
  const out: Record<string, HistoryVersion[]> = {};
  for (const model of ["trajectory"]) {
    const h = await getJson<{ versions: HistoryVersion[] }>(base, `/api/v1/models/${model}/history`);
    if (h) out[model] = h.versions;
  }
  pending.set("history", out);
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  switch (m.kind) {
    case "start":
      url = m.url;
      base = m.base;
      connect();
      setInterval(() => {
        const id = `p${nextId++}`;
        if (send({ type: "ping", id })) pingSent.set(id, performance.now());
        if (pingSent.size > 16) pingSent = new Map();
      }, 2000);
      void pollStats();
      void pollHistory();
      setInterval(() => void pollStats(), 2000);
      setInterval(() => void pollHistory(), 10000);
      break;
    case "view":
      viewing = m.t === null ? null : Math.max(timeline.range().oldest, Math.min(m.t, timeline.range().newest));
      if (viewing !== null && Number.isNaN(viewing)) viewing = null;
      seekOwed = viewing !== null;
      catchUpOwed = viewing === null;
      postTimeline(true);
      break;
    case "pull": {
      let frame: Partial<Frame> | null;
      if (viewing !== null) {
        // Paused: the live updates wait (latest wins); the page gets the viewed time once per seek.
        if (!seekOwed) break;
        seekOwed = false;
        frame = frameAt(viewing);
      } else if (catchUpOwed) {
        catchUpOwed = false;
        frame = { ...frameAt(Infinity), ...(pending.take() ?? {}) };
      } else frame = pending.take();
      if (!frame) break;
      const transfer: Transferable[] = [];
      if (frame.lidar) transfer.push(frame.lidar.points.buffer);
      if (frame.predictions) {
        transfer.push(frame.predictions.trajectory.buffer);
        if (frame.predictions.sigma) transfer.push(frame.predictions.sigma.buffer);
        if (frame.predictions.modes) transfer.push(frame.predictions.modes.buffer);
        if (frame.predictions.mode_probabilities) transfer.push(frame.predictions.mode_probabilities.buffer);
      }
      for (const s of [frame.healthSeries, frame.evalSeries, frame.latencySeries]) {
        if (!s) continue;
        transfer.push(s.t.buffer);
        for (const col of Object.values(s.series)) transfer.push(col.buffer);
      }
      post({ kind: "frame", frame, lastMessageAt, viewing }, transfer);
      break;
    }
    case "command": {
      const id = nextId++;
      pendingReplies.set(id, m.id);
      if (!send({ type: "command", id, command: m.command as Value })) {
        pendingReplies.delete(id);
        post({ kind: "reply", id: m.id, ok: false, error: "not connected" });
      }
      break;
    }
    case "refresh":
      void pollStats();
      void pollHistory();
      break;
  }
};
