// What is under the cursor in the scene view: the nearest road user, track, detection or
// predicted path within reach, described for a read-out; and the view's zoom and pan.

import { trackLabel } from "./labels";
import type { PredictionsFrame, SceneMsg, TracksMsg } from "./protocol";

export interface Picked {
  kind: "agent" | "track" | "detection" | "prediction";
  /** The road user's id (agents and predictions), or the track's. */
  id: number | null;
  text: string;
  /** Metres from the cursor (0 inside a box). */
  distance: number;
}

/** Distance from (x, y) to a box centred at (cx, cy) with heading `yaw`; 0 inside it. */
export function boxDistance(x: number, y: number, cx: number, cy: number, yaw: number, length: number, width: number): number {
  const dx = x - cx;
  const dy = y - cy;
  const c = Math.cos(yaw);
  const s = Math.sin(yaw);
  const along = Math.abs(c * dx + s * dy) - length / 2;
  const across = Math.abs(-s * dx + c * dy) - width / 2;
  return Math.hypot(Math.max(0, along), Math.max(0, across));
}

const f1 = (v: number): string => v.toFixed(1);

/** The nearest thing within `reach` metres of the world point (x, y), if any. */
export function pickAt(
  x: number,
  y: number,
  reach: number,
  scene: SceneMsg | null,
  tracks: TracksMsg | null,
  predictions: PredictionsFrame | null,
): Picked | null {
  const found: Picked[] = [];
  for (const a of scene?.agents ?? []) {
    const d = boxDistance(x, y, a.x_m, a.y_m, a.yaw_rad, a.length_m, a.width_m);
    found.push({ kind: "agent", id: a.id, distance: d, text: `agent ${a.id} · ${a.kind} · ${f1(a.speed_mps)} m/s · at (${f1(a.x_m)}, ${f1(a.y_m)}) m` });
  }
  for (const det of tracks?.detections ?? []) {
    // A detection's outline lies over its agent: it wins only when the cursor is nearer to it.
    const d = boxDistance(x, y, det.x_m, det.y_m, det.yaw_rad, det.length_m, det.width_m) + 0.05;
    found.push({
      kind: "detection",
      id: null,
      distance: d,
      text: `detection · ${det.class} · score ${det.score.toFixed(2)} · ${det.length_m.toFixed(1)} × ${det.width_m.toFixed(1)} m · ${tracks?.model ?? "detection"} v${tracks?.version ?? "?"}`,
    });
  }
  for (const t of tracks?.tracks ?? []) {
    const d = Math.hypot(x - t.x_m, y - t.y_m);
    found.push({
      kind: "track",
      id: t.id,
      distance: d,
      text: `track ${trackLabel(t)} · ${f1(Math.hypot(t.vx_mps, t.vy_mps))} m/s · ${t.misses} missed sweeps`,
    });
  }
  if (predictions) {
    const steps = 12;
    predictions.agent_ids.forEach((id, k) => {
      let best = Infinity;
      let at = 0;
      for (let i = 0; i < steps; i++) {
        const d = Math.hypot(x - (predictions.trajectory[(k * steps + i) * 2] as number), y - (predictions.trajectory[(k * steps + i) * 2 + 1] as number));
        if (d < best) {
          best = d;
          at = i;
        }
      }
      const sigma = predictions.sigma ? ` · ±${f1(2 * (predictions.sigma[(k * steps + at) * 2 + 1] as number))} m across` : "";
      const probs = predictions.mode_probabilities;
      const m = probs ? probs.length / predictions.agent_ids.length : 0;
      const likely = probs && Number.isInteger(m) && m > 1 ? ` · ${Math.round(100 * (probs[k * m] as number))}% likely of ${m} shown` : "";
      found.push({
        kind: "prediction",
        id,
        distance: best + 0.1,
        text: `prediction for agent ${id} · ${f1((at + 1) * 0.4)} s ahead${sigma}${likely} · ${predictions.model} v${predictions.version}`,
      });
    });
  }
  let nearest: Picked | null = null;
  for (const p of found) if (p.distance <= reach && (!nearest || p.distance < nearest.distance)) nearest = p;
  return nearest;
}

/** The scene view's zoom (1: the whole crossing) and centre (world metres). */
export interface View {
  zoom: number;
  cx: number;
  cy: number;
}

export const MAX_ZOOM = 8;

/** Zooms by `factor` about the world point (px, py), which stays where it is on screen. */
export function zoomAbout(v: View, factor: number, px: number, py: number): View {
  const zoom = Math.min(MAX_ZOOM, Math.max(1, v.zoom * factor));
  const k = v.zoom / zoom;
  return clampView({ zoom, cx: px - (px - v.cx) * k, cy: py - (py - v.cy) * k });
}

/** Keeps the centre within the mapped area (half a view beyond the crossing at most). */
export function clampView(v: View, halfViewM = 72): View {
  const limit = halfViewM - halfViewM / v.zoom;
  const c = (x: number): number => Math.min(limit, Math.max(-limit, x));
  return { zoom: v.zoom, cx: c(v.cx), cy: c(v.cy) };
}
