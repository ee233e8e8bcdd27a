// The chart panels: sensor health, trajectory, detection, fusion, model performance, learning.

import type { Frame, HealthMsg, HistoryVersion, Series, StatsSnapshot, TracksMsg } from "../protocol";
import { CLASSES, SENSORS } from "../protocol";
import type { Renderer, SeriesSpec, TimeChart } from "../render/types";
import { themeColour } from "../theme";
import { Panel } from "./panel";

export const SENSOR_COLOURS = ["#5aa9e6", "#f4a259", "#9bc53d", "#e05780", "#c4b5fd"];
const VERSION_COLOURS = ["#06d6a0", "#ffd166", "#ef476f", "#118ab2", "#c77dff", "#f4a259"];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits);
}

/** A panel with one or more time charts. */
abstract class ChartPanel extends Panel {
  protected charts: TimeChart[] = [];
  protected readonly chartBox: HTMLElement;

  constructor(id: string, title: string, empty: string) {
    super(id, title, empty);
    this.chartBox = el("div", "charts");
    this.body.append(this.chartBox);
  }

  protected addChart(renderer: Renderer, opts: Parameters<Renderer["create"]>[1]): TimeChart {
    const holder = el("div", "chart");
    this.chartBox.append(holder);
    const c = renderer.create(holder, opts);
    this.charts.push(c);
    return c;
  }

  /** The last scene time drawn on the panel's time axis (for tests). */
  shownUntil = NaN;

  protected plot(chart: TimeChart, s: Series, bands?: Parameters<TimeChart["setData"]>[2]): void {
    chart.setData(s.t, s.series, bands);
    this.shownUntil = s.t.length ? (s.t[s.t.length - 1] as number) : NaN;
  }

  /** Points drawn by each chart in its last update. */
  pointCounts(): number[] {
    return this.charts.map((c) => c.pointCount());
  }

  override resize(): void {
    super.resize();
    for (const c of this.charts) c.resize(this.chartBox.clientWidth);
  }
}

/** Keys of `series` matching `model*` / any version / `metric`, as chart series. */
const BASELINE_COLOURS: Record<string, string> = { constant_velocity: "#8a8f98", kalman: "#c2b280" };
/** The road model (vehicles, cyclists) in its own colours, apart from the people's versions. */
const ROAD_COLOURS = ["#ff9f1c", "#2ec4b6", "#e71d36"];
const TRAJECTORY_MODELS = ["trajectory", "trajectory_road", "trajectory_cv", "baseline"];

function versionSeries(series: Series | null, models: string[], metric: string, dash = false): SeriesSpec[] {
  if (!series) return [];
  const out: SeriesSpec[] = [];
  for (const key of Object.keys(series.series).sort()) {
    const [model, version, m] = key.split("/");
    if (m !== metric || !model || !version || !models.includes(model)) continue;
    // The baselines the server scores beside the versions (constant velocity, Kalman) in greys.
    const baseline = model === "baseline" ? BASELINE_COLOURS[version] : undefined;
    out.push({
      key,
      label: model === "baseline" ? `${version.replace("_", " ")} (baseline) ${metric}` : `${model} v${version} ${metric}`,
      // A version keeps its colour whatever other versions come and go.
      color:
        baseline ??
        (model === "trajectory_road"
          ? (ROAD_COLOURS[(Number(version) || 0) % ROAD_COLOURS.length] as string)
          : (VERSION_COLOURS[(Number(version) || out.length) % VERSION_COLOURS.length] as string)),
      dash,
    });
  }
  return out;
}

export class HealthPanel extends ChartPanel {
  private readonly chips: HTMLElement;
  private readonly chart: TimeChart;
  private health: HealthMsg | null = null;
  private series: Series | null = null;
  private spans: Frame["faultSpans"] = [];
  readonly slider: HTMLInputElement;
  private readonly sliderValue: HTMLElement;
  private sliderBusy = false;
  onThreshold: (v: number) => void = () => {};

  constructor(renderer: Renderer) {
    super("health", "Sensor health", "no data yet — waiting for the health stream");
    this.chips = el("div", "chips");
    const row = el("label", "slider");
    row.append("anomaly threshold ");
    this.slider = el("input");
    this.slider.type = "range";
    this.slider.min = "0.5";
    this.slider.max = "1";
    this.slider.step = "0.001";
    this.slider.value = "0.99";
    this.slider.id = "threshold";
    this.sliderValue = el("b", undefined, "0.990");
    this.slider.addEventListener("input", () => {
      this.sliderBusy = true;
      this.sliderValue.textContent = Number(this.slider.value).toFixed(3);
    });
    this.slider.addEventListener("change", () => {
      this.sliderBusy = false;
      this.onThreshold(Number(this.slider.value));
    });
    row.append(this.slider, this.sliderValue);
    this.body.prepend(this.chips, row);
    this.chart = this.addChart(renderer, {
      title: "anomaly score per sensor (shaded: injected faults)",
      yLabel: "score",
      yRange: [0, 1.02],
      height: 190,
      series: [
        ...SENSORS.map((s, i) => ({ key: s, label: s, color: SENSOR_COLOURS[i] as string })),
        { key: "threshold", label: "threshold", color: themeColour("--text", "#e9eef4"), dash: true },
      ],
    });
  }

  accept(f: Partial<Frame>): void {
    if (f.health) this.health = f.health;
    if (f.healthSeries) {
      this.series = f.healthSeries;
      this.gotData();
    }
    if (f.faultSpans) this.spans = f.faultSpans;
  }

  protected render(): void {
    const h = this.health;
    if (h) {
      this.chips.replaceChildren(
        ...h.sensors.map((s, i) => {
          const chip = el("div", `chip${s.alarm ? " alarm" : ""}${s.enabled ? "" : " off"}`);
          chip.dataset.sensor = s.sensor;
          chip.dataset.score = String(s.score);
          chip.style.borderColor = SENSOR_COLOURS[i] as string;
          chip.append(
            el("b", undefined, s.sensor),
            ` ${s.enabled ? s.score.toFixed(3) : "off"}`,
            el("small", undefined, s.alarm ? ` ALARM ${s.cause}` : s.learning ? " learning normal…" : s.cause ? ` ${s.cause}` : ""),
          );
          return chip;
        }),
        el("small", "muted", h.version ? ` sensor_health v${h.version}` : ""),
      );
      if (!this.sliderBusy && document.activeElement !== this.slider) {
        this.slider.value = String(h.threshold);
        this.sliderValue.textContent = h.threshold.toFixed(3);
      }
    }
    if (this.series) {
      const bands = this.spans.map((s) => ({
        start: s.start,
        end: s.end,
        color: `${SENSOR_COLOURS[s.sensor] ?? "#888888"}33`,
      }));
      this.plot(this.chart, this.series, bands);
    }
  }
}

export class TrajectoryPanel extends ChartPanel {
  private readonly chart: TimeChart;
  private series: Series | null = null;

  constructor(renderer: Renderer) {
    super(
      "trajectory",
      "Trajectory prediction",
      "no data yet — each prediction is scored against the truth 4.8 s after it is made",
    );
    this.chart = this.addChart(renderer, {
      title: "online error per version (ADE solid, FDE dashed)",
      yLabel: "metres",
      height: 190,
      series: [],
    });
  }

  accept(f: Partial<Frame>): void {
    if (!f.evalSeries) return;
    const specs = [
      ...versionSeries(f.evalSeries, TRAJECTORY_MODELS, "ade_m"),
      ...versionSeries(f.evalSeries, TRAJECTORY_MODELS, "fde_m", true),
    ];
    if (specs.length === 0) return;
    this.series = f.evalSeries;
    this.chart.setSeries(specs);
    this.gotData();
  }

  protected render(): void {
    if (this.series) this.plot(this.chart, this.series);
  }
}

export class DetectionPanel extends ChartPanel {
  private readonly bars: HTMLElement;
  private readonly chart: TimeChart;
  private tracks: TracksMsg | null = null;
  private series: Series | null = null;

  constructor(renderer: Renderer) {
    super("detection", "Detection", "no data yet — waiting for the tracks stream (detection model)");
    this.bars = el("div", "bars");
    this.body.prepend(this.bars);
    this.chart = this.addChart(renderer, {
      title: "recall / precision against the scene",
      yLabel: "share",
      yRange: [0, 1.02],
      height: 160,
      series: [],
    });
  }

  accept(f: Partial<Frame>): void {
    if (f.tracks) {
      this.tracks = f.tracks;
      this.gotData();
    }
    if (f.evalSeries) {
      const specs = [
        ...versionSeries(f.evalSeries, ["detection"], "recall"),
        ...versionSeries(f.evalSeries, ["detection"], "precision", true),
      ];
      if (specs.length) {
        this.series = f.evalSeries;
        this.chart.setSeries(specs);
        this.dirty = true;
      }
    }
  }

  protected render(): void {
    const t = this.tracks;
    if (t) {
      this.bars.replaceChildren(
        ...CLASSES.map((c) => {
          const ds = t.detections.filter((d) => d.class === c);
          const mean = ds.length ? ds.reduce((a, d) => a + d.score, 0) / ds.length : NaN;
          const row = el("div", "bar");
          row.dataset.class = c;
          row.dataset.count = String(ds.length);
          const fill = el("span", "fill");
          fill.style.width = `${Math.min(100, ds.length * 10)}%`;
          row.append(el("b", undefined, c), fill, ` ${ds.length} · confidence ${fmt(mean)}`);
          return row;
        }),
        el("div", "muted", `${t.tracks.length} confirmed tracks · ${t.model} v${t.version}`),
      );
    }
    if (this.series) this.plot(this.chart, this.series);
  }
}

export class FusionPanel extends ChartPanel {
  private readonly text: HTMLElement;
  // One unit per axis: position error, velocity error, and the filter's consistency.
  private readonly pos: TimeChart;
  private readonly vel: TimeChart;
  private readonly nis: TimeChart;
  private series: Series | null = null;
  private tracks: TracksMsg | null = null;

  constructor(renderer: Renderer) {
    super("fusion", "Fusion", "no data yet — fused tracks are scored when a track matches an object");
    this.text = el("div", "muted");
    this.body.prepend(this.text);
    this.pos = this.addChart(renderer, {
      title: "position error of the served fusion versions against the truth (RMSE)",
      yLabel: "m",
      height: 110,
      series: [],
    });
    this.vel = this.addChart(renderer, {
      title: "velocity error (RMSE)",
      yLabel: "m/s",
      height: 110,
      series: [],
    });
    this.nis = this.addChart(renderer, {
      title: "lidar NIS (consistent below the 95 % bound, 5.99)",
      yLabel: "NIS",
      height: 110,
      series: [],
    });
  }

  accept(f: Partial<Frame>): void {
    if (f.tracks) this.tracks = f.tracks;
    if (f.evalSeries) {
      const pos = versionSeries(f.evalSeries, ["fusion"], "rmse_pos_m");
      if (pos.length === 0) return;
      this.series = f.evalSeries;
      this.pos.setSeries(pos);
      this.vel.setSeries(versionSeries(f.evalSeries, ["fusion"], "rmse_vel_mps"));
      this.nis.setSeries(versionSeries(f.evalSeries, ["fusion"], "nis_lidar"));
      this.gotData();
    }
  }

  protected render(): void {
    const t = this.tracks;
    if (t) {
      const nis = t.fused.map((f) => f.nis_lidar).filter((v): v is number => typeof v === "number");
      this.text.textContent = `${t.fused.length} fused tracks · fusion v${t.fusion_version ?? "?"} · mean lidar NIS ${fmt(
        nis.length ? nis.reduce((a, b) => a + b, 0) / nis.length : NaN,
      )} (95 % bound 5.99)`;
    }
    if (this.series) for (const c of [this.pos, this.vel, this.nis]) this.plot(c, this.series);
  }
}

export class PerformancePanel extends ChartPanel {
  private readonly table: HTMLTableElement;
  private readonly routing: HTMLElement;
  private readonly chart: TimeChart;
  private stats: StatsSnapshot | null = null;
  private latency: Series | null = null;
  private routingState: unknown = null;

  constructor(renderer: Renderer) {
    super("performance", "Model performance", "no data yet — waiting for the serving statistics");
    this.table = el("table", "stats");
    this.routing = el("div", "routing muted");
    this.body.prepend(this.table, this.routing);
    this.chart = this.addChart(renderer, {
      title: "p99 request latency per version",
      yLabel: "ms",
      height: 150,
      series: [],
    });
  }

  accept(f: Partial<Frame>): void {
    if (f.stats) {
      this.stats = f.stats;
      this.gotData();
    }
    if (f.routing !== undefined) this.routingState = f.routing;
    if (f.latencySeries) {
      this.latency = f.latencySeries;
      const keys = Object.keys(f.latencySeries.series).sort();
      this.chart.setSeries(
        keys.map((k, i) => ({ key: k, label: k, color: VERSION_COLOURS[i % VERSION_COLOURS.length] as string })),
      );
      this.dirty = true;
    }
  }

  protected render(): void {
    const s = this.stats;
    if (s) {
      const head = el("tr");
      for (const h of ["model", "version", "ok", "failed", "p50 ms", "p99 ms", "rows/s", "batch", "queue"])
        head.append(el("th", undefined, h));
      const rows = s.versions.map((v) => {
        const tr = el("tr");
        tr.dataset.model = v.model;
        for (const c of [
          v.model,
          v.version,
          String(v.ok),
          String(v.failed + v.rejected),
          fmt(v.latency_ms.p50, 3),
          fmt(v.latency_ms.p99, 3),
          fmt(v.rows_per_sec, 0),
          fmt(v.batch_size.mean, 1),
          String(v.queue_depth),
        ])
          tr.append(el("td", undefined, c));
        return tr;
      });
      this.table.replaceChildren(head, ...rows);
      const loaded = s.models.map((m) => `${m.name} [${m.versions.join(", ")}]`).join(" · ");
      this.routing.textContent = `loaded: ${loaded}. ${describeRouting(this.routingState)}`;
    }
    if (this.latency) this.plot(this.chart, this.latency);
  }
}

function describeRouting(r: unknown): string {
  if (!r || typeof r !== "object") return "Routing: every model serves its newest version.";
  const models = (r as { models?: { model: string; summary: string }[] }).models ?? [];
  if (!models.length) return "Routing: every model serves its newest version.";
  return "Routing: " + models.map((m) => `${m.model}: ${m.summary}`).join(" · ");
}

export class LearningPanel extends ChartPanel {
  private readonly table: HTMLTableElement;
  private readonly chart: TimeChart;
  private versions: HistoryVersion[] = [];

  constructor(renderer: Renderer) {
    super("learning", "Learning", "no data yet — waiting for the trajectory model's version history");
    this.table = el("table", "stats");
    this.body.prepend(this.table);
    this.chart = this.addChart(renderer, {
      title: "validation ADE per epoch, per version",
      xLabel: "epoch",
      yLabel: "metres",
      height: 150,
      series: [],
    });
  }

  accept(f: Partial<Frame>): void {
    const v = f.history?.trajectory;
    if (!v || v.length === 0) return;
    this.versions = v;
    this.chart.setSeries(
      v.map((x, i) => ({
        key: x.version,
        label: `v${x.version}`,
        color: VERSION_COLOURS[i % VERSION_COLOURS.length] as string,
      })),
    );
    this.gotData();
  }

  protected render(): void {
    const head = el("tr");
    for (const h of ["version", "loaded", "epochs", "best val ADE", "online ADE", "online FDE"])
      head.append(el("th", undefined, h));
    let maxEpoch = 0;
    const rows = this.versions.map((v) => {
      const epochs = v.train?.report?.epochs ?? [];
      maxEpoch = Math.max(maxEpoch, epochs.length);
      const best = epochs.reduce((a, e) => Math.min(a, e.val_ade_m ?? Infinity), Infinity);
      const tr = el("tr");
      for (const c of [
        v.version,
        v.loaded ? "yes" : "no",
        String(epochs.length),
        Number.isFinite(best) ? best.toFixed(3) : "–",
        fmt(v.online?.ade_m, 3),
        fmt(v.online?.fde_m, 3),
      ])
        tr.append(el("td", undefined, c));
      return tr;
    });
    this.table.replaceChildren(head, ...rows);
    const x = new Float64Array(maxEpoch).map((_, i) => i + 1);
    const cols: Record<string, Float64Array> = {};
    for (const v of this.versions) {
      const epochs = v.train?.report?.epochs ?? [];
      cols[v.version] = new Float64Array(maxEpoch).map((_, i) => epochs[i]?.val_ade_m ?? NaN);
    }
    this.chart.setData(x, cols);
  }
}
