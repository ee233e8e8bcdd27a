// Bird's-eye view of the scene on a canvas: the road map, the ego vehicle and agents, the lidar
// sweep, detections with class and confidence, tracks with ids and classes, predicted trajectories with
// their uncertainty bands, and the fused estimates.

import type { Frame, LidarFrame, PredictionsFrame, SceneMsg, TracksMsg } from "../protocol";
import { el } from "../dom";
import { trackLabel } from "../labels";
import { clampView, pickAt, zoomAbout, type Picked, type View } from "../scene_pick";
import { Panel } from "./panel";


export interface MapInfo {
  road_half_width_m: number;
  lane_offset_m: number;
  sidewalk_outer_m: number;
  arm_length_m: number;
  stop_line_m: number;
  obstacles: { x_m: number; y_m: number; length_m: number; width_m: number; yaw_rad: number }[];
  crosswalks: [number, number, number, number][];
}

const KIND_COLOURS: Record<string, string> = {
  vehicle: "#5aa9e6",
  pedestrian: "#f4a259",
  cyclist: "#9bc53d",
};
const EGO_COLOUR = "#e9eef4";
const HALF_VIEW_M = 72;
/** Colours of the layers, for drawing and for the legend. */
const LAYER_COLOURS = {
  lidar: "#4ad2e8",
  detections: "#ffd166",
  tracks: "#06d6a0",
  predictions: "#d678ff",
  fused: "#ef476f",
} as const;
const LAYER_NOTES: Record<string, string> = {
  lidar: "returns: grey ground (< 0.25 m), cyan 0.25–2.5 m, steel above",
  detections: "dashed boxes, class and score",
  tracks: "id, class, velocity line",
  predictions: "4.8 s paths, band ±2σ across; dashed: other likely futures with their probability",
  fused: "fused position, circle 2σ",
};

export class ScenePanel extends Panel {
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly mapLayer: HTMLCanvasElement;
  private readonly pointLayer: HTMLCanvasElement;
  private readonly info: HTMLElement;
  private map: MapInfo | null = null;
  private scene: SceneMsg | null = null;
  private lidar: LidarFrame | null = null;
  private lidarDirty = false;
  private predictions: PredictionsFrame | null = null;
  private tracks: TracksMsg | null = null;
  private size = 0;
  private dpr = 1;
  /** Lidar points drawn in the last sweep (for tests and the legend). */
  lidarDrawn = 0;
  /** Zoom and pan (wheel, drag, keys; double-click or 0 resets). */
  view: View = { zoom: 1, cx: 0, cy: 0 };
  private readonly hover: HTMLElement;
  private readonly selected: HTMLElement;
  /** Removes a road user from the scene (set by the page: a scene command). */
  onRemoveAgent: ((id: number) => void) | null = null;
  readonly layers = { lidar: true, detections: true, tracks: true, predictions: true, fused: true };

  constructor() {
    super("scene", "Scene", "no data yet — waiting for the scene stream");
    this.onScreen = true; // at the top of the page: draw before the first intersection report
    this.canvas = document.createElement("canvas");
    this.canvas.className = "scene-canvas";
    // For a screen reader: what the canvas shows, and the line under it with the live figures.
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Map of the scene: road users, lidar returns, tracks and predicted paths");
    this.canvas.setAttribute("aria-describedby", "scene-info");
    const ctx = this.canvas.getContext("2d");
    if (!ctx) throw new Error("no 2-D canvas");
    this.ctx = ctx;
    this.mapLayer = document.createElement("canvas");
    this.pointLayer = document.createElement("canvas");
    this.info = document.createElement("div");
    this.info.className = "scene-info";
    this.info.id = "scene-info";
    const legend = document.createElement("div");
    legend.className = "legend";
    for (const key of Object.keys(this.layers) as (keyof ScenePanel["layers"])[]) {
      const label = document.createElement("label");
      label.title = LAYER_NOTES[key] ?? "";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.dataset.layer = key;
      box.addEventListener("change", () => {
        this.layers[key] = box.checked;
        this.lidarDirty = true;
        this.dirty = true;
      });
      label.append(box, swatch(LAYER_COLOURS[key]), ` ${key}`);
      legend.append(label);
    }
    const kinds = document.createElement("div");
    kinds.className = "legend";
    for (const [kind, colour] of Object.entries(KIND_COLOURS)) kinds.append(el("span", {}, swatch(colour), ` ${kind}`));
    kinds.append(el("span", {}, swatch(EGO_COLOUR), " ego"));
    kinds.append(el("span", { className: "muted" }, Object.entries(LAYER_NOTES).map(([k, v]) => `${k}: ${v}`).join(" · ")));
    this.hover = el("div", { id: "scene-hover", className: "scene-hover", role: "tooltip", hidden: true });
    this.selected = el("div", { id: "scene-selected", className: "scene-selected", hidden: true });
    const stage = el("div", { className: "scene-stage" }, this.canvas, this.hover);
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute("aria-keyshortcuts", "+ - 0 ArrowUp ArrowDown ArrowLeft ArrowRight");
    this.body.append(stage, this.info, this.selected, legend, kinds);
    this.listen();
  }

  /** Canvas pixels (device) of a world point, and the world point under a client position. */
  private world(clientX: number, clientY: number): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    const u = ((clientX - r.left) * this.canvas.width) / Math.max(1, r.width);
    const v = ((clientY - r.top) * this.canvas.height) / Math.max(1, r.height);
    const s = this.scale;
    return [this.view.cx + (u - this.canvas.width / 2) / s, this.view.cy - (v - this.canvas.height / 2) / s];
  }

  /** Where a world point is on the page (CSS pixels, client coordinates), for tests. */
  clientOf(x: number, y: number): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    const [u, v] = this.px(x, y);
    return [r.left + (u * r.width) / this.canvas.width, r.top + (v * r.height) / this.canvas.height];
  }

  setView(v: View): void {
    this.view = clampView(v, HALF_VIEW_M);
    this.drawMap();
    this.lidarDirty = true;
    this.dirty = true;
  }

  private listen(): void {
    const c = this.canvas;
    let drag: { x: number; y: number; cx: number; cy: number; moved: boolean } | null = null;
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [x, y] = this.world(e.clientX, e.clientY);
        this.setView(zoomAbout(this.view, Math.exp(-e.deltaY * 0.0015), x, y));
      },
      { passive: false },
    );
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, cx: this.view.cx, cy: this.view.cy, moved: false };
    });
    c.addEventListener("pointermove", (e) => {
      if (drag && e.buttons) {
        const dx = e.clientX - drag.x;
        const dy = e.clientY - drag.y;
        if (Math.hypot(dx, dy) > 3) drag.moved = true;
        if (drag.moved) {
          const cssScale = (this.scale * c.getBoundingClientRect().width) / c.width;
          this.setView({ zoom: this.view.zoom, cx: drag.cx - dx / cssScale, cy: drag.cy + dy / cssScale });
        }
        return;
      }
      this.hoverAt(e.clientX, e.clientY);
    });
    c.addEventListener("pointerup", (e) => {
      const click = drag && !drag.moved;
      drag = null;
      if (click) this.select(this.pickClient(e.clientX, e.clientY));
    });
    c.addEventListener("pointerleave", () => (this.hover.hidden = true));
    c.addEventListener("dblclick", () => this.setView({ zoom: 1, cx: 0, cy: 0 }));
    c.addEventListener("keydown", (e) => {
      const step = HALF_VIEW_M / this.view.zoom / 4;
      const v = this.view;
      const keys: Record<string, () => View> = {
        "+": () => zoomAbout(v, 1.25, v.cx, v.cy),
        "=": () => zoomAbout(v, 1.25, v.cx, v.cy),
        "-": () => zoomAbout(v, 0.8, v.cx, v.cy),
        "0": () => ({ zoom: 1, cx: 0, cy: 0 }),
        ArrowLeft: () => ({ ...v, cx: v.cx - step }),
        ArrowRight: () => ({ ...v, cx: v.cx + step }),
        ArrowUp: () => ({ ...v, cy: v.cy + step }),
        ArrowDown: () => ({ ...v, cy: v.cy - step }),
      };
      const next = keys[e.key];
      if (next) {
        e.preventDefault();
        this.setView(next());
      }
    });
  }

  private pickClient(clientX: number, clientY: number): Picked | null {
    const [x, y] = this.world(clientX, clientY);
    // Within 10 CSS pixels of the cursor.
    const cssScale = (this.scale * this.canvas.getBoundingClientRect().width) / Math.max(1, this.canvas.width);
    return pickAt(x, y, 10 / Math.max(1e-6, cssScale), this.scene, this.tracks, this.predictions);
  }

  private hoverAt(clientX: number, clientY: number): void {
    const p = this.pickClient(clientX, clientY);
    if (!p) {
      this.hover.hidden = true;
      return;
    }
    const r = this.canvas.getBoundingClientRect();
    this.hover.textContent = p.text;
    this.hover.dataset.kind = p.kind;
    this.hover.style.left = `${Math.min(r.width - 160, clientX - r.left + 12)}px`;
    this.hover.style.top = `${clientY - r.top + 12}px`;
    this.hover.hidden = false;
  }

  /** A clicked road user: its read-out and a button to remove it from the scene. */
  private select(p: Picked | null): void {
    if (!p || p.kind !== "agent" || p.id === null) {
      this.selected.hidden = true;
      return;
    }
    const id = p.id;
    const remove = el("button", { id: "remove-agent", textContent: `Remove agent ${id}` });
    remove.addEventListener("click", () => {
      this.onRemoveAgent?.(id);
      this.selected.hidden = true;
    });
    this.selected.replaceChildren(el("span", { textContent: p.text }), remove);
    this.selected.hidden = false;
  }

  setMap(map: MapInfo): void {
    this.map = map;
    this.size = 0; // redraw the map layer
    this.dirty = true;
  }

  accept(f: Partial<Frame>): void {
    if (f.scene) {
      this.scene = f.scene;
      this.gotData();
    }
    if (f.lidar) {
      this.lidar = f.lidar;
      this.lidarDirty = true;
      this.dirty = true;
    }
    if (f.predictions) {
      this.predictions = f.predictions;
      this.dirty = true;
    }
    if (f.tracks) {
      this.tracks = f.tracks;
      this.dirty = true;
    }
  }

  /** The scene time of the drawn scene (NaN before the first). */
  get time(): number {
    return this.scene?.t_secs ?? NaN;
  }

  get agentCount(): number {
    return this.scene?.agents.length ?? 0;
  }

  /** The road users as last received (for tests). */
  get agents(): SceneMsg["agents"] {
    return this.scene?.agents ?? [];
  }

  private layout(): boolean {
    const css = Math.max(240, Math.min(this.body.clientWidth || 640, 720));
    const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
    if (css === this.size && dpr === this.dpr) return false;
    this.size = css;
    this.dpr = dpr;
    for (const c of [this.canvas, this.mapLayer, this.pointLayer]) {
      c.width = Math.round(css * dpr);
      c.height = Math.round(css * dpr);
    }
    this.canvas.style.width = `${css}px`;
    this.canvas.style.height = `${css}px`;
    this.drawMap();
    this.lidarDirty = true;
    return true;
  }

  /** World metres to canvas pixels. */
  private get scale(): number {
    return (this.canvas.width / (2 * HALF_VIEW_M)) * this.view.zoom;
  }

  private px(x: number, y: number): [number, number] {
    const s = this.scale;
    return [this.canvas.width / 2 + (x - this.view.cx) * s, this.canvas.height / 2 - (y - this.view.cy) * s];
  }

  private drawMap(): void {
    const ctx = this.mapLayer.getContext("2d");
    if (!ctx) return;
    const s = this.scale;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#141a21";
    ctx.fillRect(0, 0, this.mapLayer.width, this.mapLayer.height);
    const m = this.map;
    if (!m) return;
    ctx.setTransform(s, 0, 0, -s, this.mapLayer.width / 2 - this.view.cx * s, this.mapLayer.height / 2 + this.view.cy * s);
    const L = m.arm_length_m;
    ctx.fillStyle = "#232b35"; // sidewalks
    ctx.fillRect(-m.sidewalk_outer_m, -L, 2 * m.sidewalk_outer_m, 2 * L);
    ctx.fillRect(-L, -m.sidewalk_outer_m, 2 * L, 2 * m.sidewalk_outer_m);
    ctx.fillStyle = "#2f3844"; // roads
    const r = m.road_half_width_m;
    ctx.fillRect(-r, -L, 2 * r, 2 * L);
    ctx.fillRect(-L, -r, 2 * L, 2 * r);
    ctx.strokeStyle = "#b8a14a";
    ctx.lineWidth = 0.15;
    ctx.setLineDash([2, 2]);
    ctx.beginPath();
    for (const [a, b] of [
      [r, L],
      [-L, -r],
    ] as const) {
      ctx.moveTo(0, a);
      ctx.lineTo(0, b);
      ctx.moveTo(a, 0);
      ctx.lineTo(b, 0);
    }
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.strokeStyle = "#cfd6de55";
    ctx.lineWidth = 1.2;
    for (const [x1, y1, x2, y2] of m.crosswalks) {
      ctx.setLineDash([0.5, 0.5]);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x2, y2);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.fillStyle = "#3b3f4a";
    for (const o of m.obstacles) {
      ctx.save();
      ctx.translate(o.x_m, o.y_m);
      ctx.rotate(o.yaw_rad);
      ctx.fillRect(-o.length_m / 2, -o.width_m / 2, o.length_m, o.width_m);
      ctx.restore();
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  /** The lidar layer's pixels, kept between sweeps (a fresh full-canvas buffer per sweep is
   * megabytes of garbage ten times a second), and the pixels the last sweep lit. */
  private img: ImageData | null = null;
  private lit = new Uint32Array(0);
  private litCount = 0;

  private drawPoints(): void {
    const w = this.pointLayer.width;
    const h = this.pointLayer.height;
    const ctx = this.pointLayer.getContext("2d");
    if (!ctx) return;
    this.lidarDrawn = 0;
    if (!this.img || this.img.width !== w || this.img.height !== h) {
      this.img = ctx.createImageData(w, h);
      this.litCount = 0;
    }
    const img = this.img;
    const px = new Uint32Array(img.data.buffer);
    // Unlight the last sweep's pixels instead of clearing the whole buffer.
    for (let i = 0; i < this.litCount; i++) px[this.lit[i] as number] = 0;
    this.litCount = 0;
    const l = this.lidar;
    if (!l || !this.layers.lidar) {
      ctx.clearRect(0, 0, w, h);
      return;
    }
    if (this.lit.length < l.points.length / 4) this.lit = new Uint32Array(Math.ceil(l.points.length / 4) * 2);
    const s = this.scale;
    const { cx, cy } = this.view;
    const c = Math.cos(l.pose.yaw_rad);
    const sn = Math.sin(l.pose.yaw_rad);
    const p = l.points;
    let drawn = 0;
    for (let i = 0; i + 3 < p.length; i += 4) {
      const x = p[i] as number;
      const y = p[i + 1] as number;
      const z = (p[i + 2] as number) + l.pose.z_m;
      const wx = l.pose.x_m + c * x - sn * y;
      const wy = l.pose.y_m + sn * x + c * y;
      const u = Math.round(w / 2 + (wx - cx) * s);
      const v = Math.round(h / 2 - (wy - cy) * s);
      if (u < 0 || v < 0 || u >= w || v >= h) continue;
      // ABGR (little-endian): ground dim grey, obstacles bright cyan by height.
      const at = v * w + u;
      px[at] = z < 0.25 ? 0xff5a5048 : z < 2.5 ? 0xffe8d24a : 0xffb0a070;
      this.lit[this.litCount++] = at;
      drawn++;
    }
    ctx.putImageData(img, 0, 0);
    this.lidarDrawn = drawn;
  }

  private box(x: number, y: number, yaw: number, l: number, w: number): void {
    const ctx = this.ctx;
    ctx.save();
    const [u, v] = this.px(x, y);
    ctx.translate(u, v);
    ctx.rotate(-yaw);
    const s = this.scale;
    ctx.beginPath();
    ctx.rect((-l / 2) * s, (-w / 2) * s, l * s, w * s);
    ctx.restore();
  }

  protected render(): void {
    this.layout();
    if (this.lidarDirty) {
      this.lidarDirty = false;
      this.drawPoints();
    }
    const ctx = this.ctx;
    const s = this.scale;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.mapLayer, 0, 0);
    ctx.drawImage(this.pointLayer, 0, 0);
    const scene = this.scene;
    if (!scene) return;
    const dpr = this.dpr;
    ctx.lineWidth = 1.5 * dpr;
    // Agents and the ego.
    for (const a of scene.agents) {
      this.box(a.x_m, a.y_m, a.yaw_rad, a.length_m, a.width_m);
      ctx.fillStyle = KIND_COLOURS[a.kind] ?? "#ccc";
      ctx.globalAlpha = 0.75;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    const e = scene.ego;
    this.box(e.x_m, e.y_m, e.yaw_rad, e.length_m, e.width_m);
    ctx.fillStyle = EGO_COLOUR;
    ctx.fill();
    // Predicted trajectories with a 2-sigma band across the path (no band from a model that
    // gives no uncertainty).
    const pr = this.predictions;
    if (pr && this.layers.predictions) {
      const steps = 12;
      const sigma = pr.sigma;
      for (let k = 0; k < pr.agent_ids.length; k++) {
        const base = k * steps * 2;
        // No band for a track whose model gives no uncertainty (NaN rows: the road model's).
        if (sigma && Number.isFinite(sigma[base + 1])) this.band(pr.trajectory, sigma, base, steps);
        ctx.beginPath();
        for (let i = 0; i < steps; i++) {
          const [u, v] = this.px(pr.trajectory[base + 2 * i] as number, pr.trajectory[base + 2 * i + 1] as number);
          if (i) ctx.lineTo(u, v);
          else ctx.moveTo(u, v);
        }
        ctx.strokeStyle = LAYER_COLOURS.predictions;
        ctx.stroke();
      }
      this.alternatives(pr, steps, dpr);
    }
    const tr = this.tracks;
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    if (tr && this.layers.detections) {
      ctx.setLineDash([4 * dpr, 3 * dpr]);
      for (const d of tr.detections) {
        this.box(d.x_m, d.y_m, d.yaw_rad, d.length_m, d.width_m);
        ctx.strokeStyle = LAYER_COLOURS.detections;
        ctx.stroke();
        const [u, v] = this.px(d.x_m, d.y_m);
        ctx.fillStyle = LAYER_COLOURS.detections;
        ctx.fillText(`${d.class.slice(0, 3)} ${d.score.toFixed(2)}`, u + 6 * dpr, v - 6 * dpr);
      }
      ctx.setLineDash([]);
    }
    if (tr && this.layers.tracks) {
      ctx.strokeStyle = LAYER_COLOURS.tracks;
      ctx.fillStyle = LAYER_COLOURS.tracks;
      for (const t of tr.tracks) {
        const [u, v] = this.px(t.x_m, t.y_m);
        ctx.beginPath();
        ctx.moveTo(u, v);
        ctx.lineTo(u + t.vx_mps * s, v - t.vy_mps * s);
        ctx.stroke();
        ctx.fillText(trackLabel(t), u + 6 * dpr, v + 12 * dpr);
      }
    }
    if (tr && this.layers.fused) {
      ctx.strokeStyle = LAYER_COLOURS.fused;
      for (const f of tr.fused) {
        const [u, v] = this.px(f.x_m, f.y_m);
        ctx.beginPath();
        ctx.arc(u, v, Math.max(2 * dpr, Math.sqrt(Math.max(0, f.pos_var_m2)) * 2 * s), 0, 2 * Math.PI);
        ctx.stroke();
      }
    }
    this.info.textContent =
      `t ${scene.t_secs.toFixed(1)} s · ${scene.running ? "running" : "paused"} · seed ${scene.seed} · ` +
      `${scene.agents.length} agents · signal ${scene.signal.phase}${scene.signal.arm ? " " + scene.signal.arm : ""} · ` +
      `lidar ${this.lidarDrawn} pts · ${tr ? tr.detections.length : 0} detections · ${tr ? tr.tracks.length : 0} tracks` +
      (pr ? ` · predictions ${pr.model} v${pr.version}` : "");
    this.info.dataset.agents = String(scene.agents.length);
  }

  /**
   * The other likely futures of a model of several (the first of each agent's is its drawn
   * path): dashed, fainter the less likely, with the probability at the end when ≥ 10 %.
   */
  private alternatives(pr: PredictionsFrame, steps: number, dpr: number): void {
    const modes = pr.modes;
    const probs = pr.mode_probabilities;
    const n = pr.agent_ids.length;
    if (!modes || !probs || n === 0) return;
    const m = probs.length / n;
    if (!Number.isInteger(m) || modes.length !== n * m * steps * 2) return;
    const ctx = this.ctx;
    ctx.save();
    ctx.setLineDash([5 * dpr, 4 * dpr]);
    ctx.strokeStyle = LAYER_COLOURS.predictions;
    ctx.fillStyle = LAYER_COLOURS.predictions;
    ctx.font = `${10 * dpr}px system-ui, sans-serif`;
    for (let k = 0; k < n; k++) {
      for (let j = 1; j < m; j++) {
        const p = probs[k * m + j] as number;
        if (!(p > 0.02)) continue;
        const base = (k * m + j) * steps * 2;
        ctx.globalAlpha = Math.min(1, 0.25 + p);
        ctx.beginPath();
        for (let i = 0; i < steps; i++) {
          const [u, v] = this.px(modes[base + 2 * i] as number, modes[base + 2 * i + 1] as number);
          if (i) ctx.lineTo(u, v);
          else ctx.moveTo(u, v);
        }
        ctx.stroke();
        if (p >= 0.1) {
          const [u, v] = this.px(modes[base + 2 * steps - 2] as number, modes[base + 2 * steps - 1] as number);
          ctx.fillText(`${Math.round(p * 100)}%`, u + 3 * dpr, v - 3 * dpr);
        }
      }
    }
    ctx.restore();
  }

  /** One prediction's band, 2 sigma across its path. */
  private band(trajectory: Float32Array, sigma: Float32Array, base: number, steps: number): void {
    const ctx = this.ctx;
    const left: [number, number][] = [];
    const right: [number, number][] = [];
    for (let i = 0; i < steps; i++) {
      const x = trajectory[base + 2 * i] as number;
      const y = trajectory[base + 2 * i + 1] as number;
      const j = Math.min(i + 1, steps - 1);
      const i0 = j === i ? i - 1 : i;
      const dx = (trajectory[base + 2 * j] as number) - (trajectory[base + 2 * i0] as number);
      const dy = (trajectory[base + 2 * j + 1] as number) - (trajectory[base + 2 * i0 + 1] as number);
      const n = Math.hypot(dx, dy) || 1;
      const across = 2 * Math.max(0.1, sigma[base + 2 * i + 1] ?? 0);
      left.push(this.px(x - (dy / n) * across, y + (dx / n) * across));
      right.push(this.px(x + (dy / n) * across, y - (dx / n) * across));
    }
    ctx.beginPath();
    left.forEach(([u, v], i) => (i ? ctx.lineTo(u, v) : ctx.moveTo(u, v)));
    for (let i = right.length - 1; i >= 0; i--) ctx.lineTo(...(right[i] as [number, number]));
    ctx.closePath();
    ctx.fillStyle = "rgba(214,120,255,0.18)";
    ctx.fill();
  }
}

function swatch(colour: string): HTMLElement {
  const s = document.createElement("span");
  s.className = "swatch";
  s.style.background = colour;
  s.setAttribute("aria-hidden", "true");
  return s;
}
