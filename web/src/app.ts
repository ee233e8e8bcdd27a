// The dashboard page (loaded by main.ts once the worker is running): picks the chart renderer,
// builds the panels and the controls, and draws at most once per animation frame.

import { getJson } from "./http";
import { Controls } from "./controls";
import { LifecycleControls } from "./lifecycle";
import { DetectionPanel, FusionPanel, HealthPanel, LearningPanel, PerformancePanel, TrajectoryPanel } from "./panels/charts";
import type { Panel } from "./panels/panel";
import { ScenePanel, type MapInfo } from "./panels/scene";
import { TimelineBar } from "./timeline_bar";
import { describeCluster, type ClusterInfo, type Frame, type FromWorker, type ToWorker } from "./protocol";
import type { Renderer } from "./render/types";
import { uplotRenderer } from "./render/uplot";

const base = location.origin;
const boot = (window as unknown as { __boot: { worker: Worker; early: FromWorker[] } }).__boot;
const worker = boot.worker;
const toWorker = (m: ToWorker): void => worker.postMessage(m);

const $ = (id: string): HTMLElement => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e;
};

// Replies to commands, by id.
let nextCommand = 1;
const replies = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
function sendCommand(command: Record<string, unknown>): Promise<unknown> {
  const id = nextCommand++;
  return new Promise((ok, fail) => {
    replies.set(id, { ok, fail });
    toWorker({ kind: "command", id, command });
    setTimeout(() => {
      if (replies.delete(id)) fail(new Error("no reply within 10 s"));
    }, 10000);
  });
}

// Scene panel first: it needs no chart library.
const scene = new ScenePanel();
const grid = $("grid");
grid.append(scene.el);
const panels: Panel[] = [scene];
const early: Partial<Frame>[] = [];
let chartPanels: {
  health: HealthPanel;
  trajectory: TrajectoryPanel;
  detection: DetectionPanel;
  fusion: FusionPanel;
  performance: PerformancePanel;
  learning: LearningPanel;
} | null = null;
const controls = new Controls($("controls"), sendCommand, base);
scene.onRemoveAgent = (id) => void controls.run({ op: "remove_agent", agent_id: id });
const lifecycle = new LifecycleControls(base);
$("controls").after(lifecycle.el);
const timelineBar = new TimelineBar();
grid.before(timelineBar.el);
timelineBar.onView = (t) => toWorker({ kind: "view", t });

// Connection indicator.
const conn = $("conn");
let lastMessageAt = 0;
let firstDataAt: number | null = null;

let noticeTimer: ReturnType<typeof setTimeout> | undefined;

function onWorker(m: FromWorker): void {
  switch (m.kind) {
    case "conn":
      if (m.state === "open" && performance.getEntriesByName("waypoint:ws-open").length === 0)
        performance.mark("waypoint:ws-open");
      conn.dataset.state = m.state;
      lifecycle.setOnline(m.state === "open");
      $("conn-text").textContent = m.state === "closed" ? `reconnecting (attempt ${m.attempt})` : m.state;
      $("rtt").textContent = m.rttMs === null ? "–" : m.rttMs.toFixed(1);
      $("dropped").textContent = String(m.dropped);
      lastMessageAt = m.lastMessageAt;
      break;
    case "frame":
      if (performance.getEntriesByName("waypoint:first-frame").length === 0) performance.mark("waypoint:first-frame");
      lastMessageAt = m.lastMessageAt;
      apply(m.frame, m.viewing === null);
      scheduleDraw();
      break;
    case "cluster":
      showCluster(m.cluster);
      break;
    case "timeline":
      lastMessageAt = m.lastMessageAt;
      timelineBar.show(m.oldest, m.newest, m.viewing, m.bytes);
      break;
    case "notice": {
      // The server's word about itself (a replica that lost its cluster paused the scene): a
      // warning stays until the all-clear, which shows for a few seconds.
      const note = $("server-note");
      note.textContent = m.message;
      note.classList.toggle("warn", m.level === "warning");
      note.hidden = false;
      clearTimeout(noticeTimer);
      if (m.level !== "warning") noticeTimer = setTimeout(() => (note.hidden = true), 5000);
      break;
    }
    case "reply": {
      const r = replies.get(m.id);
      if (!r) break;
      replies.delete(m.id);
      if (m.ok) r.ok(m.result);
      else r.fail(new Error(m.error ?? "failed"));
      break;
    }
  }
}

function apply(f: Partial<Frame>, live: boolean): void {
  // The scene controls show the scene as it is now, not as it was at a scrubbed time.
  if (f.scene && live) controls.showScene(f.scene);
  if (f.stats) controls.showStats(f.stats);
  if (chartPanels) for (const p of panels) p.accept(f);
  else {
    scene.accept(f);
    early.push(f);
    if (early.length > 8) early.shift();
  }
}

let clusterText = "";
function showCluster(c: ClusterInfo): void {
  const { text, warn } = describeCluster(c);
  if (text === clusterText) return;
  clusterText = text;
  const e = $("cluster");
  e.hidden = text === "";
  e.textContent = text;
  e.classList.toggle("warn", warn);
}

// Drawing: a batch from the worker schedules one draw at the next animation frame (however
// many batches arrive before it); every animation frame asks the worker for the next batch.
let frames = 0;
let drawScheduled = false;
function drawAll(): void {
  drawScheduled = false;
  for (const p of panels) p.draw();
  if (firstDataAt === null && scene.draws > 0) {
    firstDataAt = performance.now();
    performance.mark("waypoint:first-data");
  }
}
function scheduleDraw(): void {
  if (drawScheduled) return;
  drawScheduled = true;
  requestAnimationFrame(drawAll);
}
function loop(): void {
  frames++;
  toWorker({ kind: "pull" });
  requestAnimationFrame(loop);
}
requestAnimationFrame(loop);

setInterval(() => {
  $("age").textContent = lastMessageAt ? String(Math.max(0, Date.now() - lastMessageAt)) : "–";
}, 250);

// Only panels on screen draw.
const observer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const p = panels.find((x) => x.el === e.target);
    if (p) {
      p.onScreen = e.isIntersecting;
      if (e.isIntersecting) p.dirty = true;
    }
  }
});
observer.observe(scene.el);
window.addEventListener("resize", () => {
  for (const p of panels) p.resize();
});


async function pickRenderer(license: string | null, available: boolean, info?: Record<string, string>): Promise<Renderer> {
  // `?renderer=lcjs` tries LightningChart JS even without a key (to see how it refuses); it is
  // tried only where the operator gave the server their copy of it (`--lcjs-module`).
  const forced = new URLSearchParams(location.search).get("renderer") === "lcjs";
  const note = $("renderer-note");
  if (license && !available && !forced) {
    note.hidden = false;
    note.className = "note warn";
    note.dataset.renderer = "fallback";
    note.textContent =
      "A LightningChart JS licence is set but the server has no copy of the library (--lcjs-module); charts are drawn with uPlot.";
    return uplotRenderer;
  }
  if (!(available || forced) || (!license && !forced)) return uplotRenderer;
  const { loadLcjs } = await import("./render/lcjs");
  const r = await loadLcjs(license ?? undefined, info);
  if ("renderer" in r) {
    note.hidden = false;
    note.textContent = "Charts: LightningChart JS";
    note.dataset.renderer = "lcjs";
    return r.renderer;
  }
  note.hidden = false;
  note.className = "note warn";
  note.dataset.renderer = "fallback";
  note.textContent = `LightningChart JS was not used (${r.refused.slice(0, 120)}); charts are drawn with uPlot.`;
  return uplotRenderer;
}

async function start(): Promise<void> {
  void getJson<MapInfo>(base, "/api/v1/map").then((m) => m && scene.setMap(m));
  const config = await getJson<{
    lcjs_license: string | null;
    lcjs_module?: boolean;
    lcjs_license_information?: Record<string, string> | null;
  }>(base, "/api/v1/dashboard");
  const renderer = await pickRenderer(
    config?.lcjs_license ?? null,
    config?.lcjs_module ?? false,
    config?.lcjs_license_information ?? undefined,
  );
  const cp = {
    health: new HealthPanel(renderer),
    trajectory: new TrajectoryPanel(renderer),
    detection: new DetectionPanel(renderer),
    fusion: new FusionPanel(renderer),
    performance: new PerformancePanel(renderer),
    learning: new LearningPanel(renderer),
  };
  cp.health.onThreshold = (value) => void controls.run({ op: "set_threshold", value });
  for (const p of Object.values(cp)) {
    grid.append(p.el);
    panels.push(p);
    observer.observe(p.el);
    p.resize();
  }
  chartPanels = cp;
  for (const f of early.splice(0)) for (const p of Object.values(cp)) p.accept(f);
  toWorker({ kind: "refresh" });
  // For tests and measurement: what each panel drew.
  (window as unknown as { __waypoint: unknown }).__waypoint = {
    renderer: renderer.name,
    frames: () => frames,
    firstDataAt: () => firstDataAt,
    agents: () => scene.agentCount,
    lidarDrawn: () => scene.lidarDrawn,
    sceneAgents: () => scene.agents.map((a) => ({ id: a.id, kind: a.kind, at: scene.clientOf(a.x_m, a.y_m) })),
    sceneView: () => scene.view,
    sceneTime: () => scene.time,
    viewing: () => timelineBar.viewing,
    timelineBytes: () => timelineBar.bytes,
    draws: () => Object.fromEntries(panels.map((p) => [p.id, p.draws])),
    points: () => Object.fromEntries(Object.entries(cp).map(([k, p]) => [k, p.pointCounts()])),
    shownUntil: () => Object.fromEntries(Object.entries(cp).map(([k, p]) => [k, p.shownUntil])),
  };
}
// The worker's messages, from those it sent before this module loaded on: taken only now, once
// everything `onWorker` reaches is declared (a `cluster` or `timeline` message in the early
// batch would otherwise reach a `let` not yet initialised and stop the page's start).
worker.onmessage = (ev: MessageEvent<FromWorker>) => onWorker(ev.data);
for (const m of boot.early.splice(0)) onWorker(m);
void start();
