// LightningChart JS, used when the operator supplies both a licence key and their own copy of
// the library. LightningChart JS is proprietary and is never part of Waypoint's build: the
// server serves the operator's copy of its self-contained browser bundle (`lcjs.iife.js`, given
// with `--lcjs-module PATH`) at `/lcjs/lcjs.js`, and this page loads it only then (types only
// come from the package at build time). Without a valid key LightningChart draws a licence notice
// instead of the data and raises no error, so `loadLcjs` probes a chart first and reports the
// rejection for the caller to fall back.

import type { Band, ChartOptions, Renderer, SeriesSpec, TimeChart } from "./types";

type Lcjs = typeof import("@lightningchart/lcjs");

const SCHEMA = { x: { pattern: "progressive" as const }, y: { pattern: null } };

/** Samples each line keeps at most (older ones are dropped by the library as new ones come). */
const MAX_SAMPLES = 4096;

/**
 * How a new window of rows reaches a chart that drew `drawn` (its first and last time): the
 * index of the first row to append when the window only moved forward, or -1 when the lines must
 * be refilled (the first draw, a scrub back, a reset of the scene).
 */
export function appendFrom(drawn: { first: number; last: number } | null, x: Float64Array): number {
  if (!drawn || x.length === 0) return -1;
  const first = x[0] as number;
  if (first < drawn.first || (x[x.length - 1] as number) < drawn.last) return -1;
  // The rows already drawn must still be there (a window that jumped past them is refilled).
  if (first > drawn.last) return -1;
  let i = 0;
  while (i < x.length && (x[i] as number) <= drawn.last) i++;
  return i;
}

function licenceError(container: HTMLElement): string | null {
  const el = container.querySelector("#lcjs-error");
  if (el) return (el.textContent ?? "").trim() || "licence rejected";
  const text = container.textContent ?? "";
  return /licen[cs]e/i.test(text) ? text.trim() : null;
}

class LcjsChart implements TimeChart {
  private readonly chart: ReturnType<ReturnType<Lcjs["lightningChart"]>["ChartXY"]>;
  private lines = new Map<string, ReturnType<LcjsChart["chart"]["addPointLineAreaSeries"]>>();
  private bandObjects: { dispose(): unknown }[] = [];
  private points = 0;
  /** The time span the lines hold (null: nothing drawn since the series were set). */
  private drawn: { first: number; last: number } | null = null;

  constructor(
    private readonly lc: Lcjs,
    lcInstance: ReturnType<Lcjs["lightningChart"]>,
    container: HTMLElement,
    private readonly options: ChartOptions,
  ) {
    container.style.height = `${options.height}px`;
    this.chart = lcInstance.ChartXY({ container: container as HTMLDivElement, theme: lc.Themes.darkGold });
    this.chart.setTitle(options.title);
    this.chart.getDefaultAxisX().setTitle(options.xLabel ?? "scene time (s)");
    this.chart.getDefaultAxisY().setTitle(options.yLabel);
    if (options.yRange) this.chart.getDefaultAxisY().setInterval({ start: options.yRange[0], end: options.yRange[1] });
    this.setSeries(options.series);
  }

  setSeries(series: SeriesSpec[]): void {
    const keys = series.map((s) => s.key).join("|");
    if (keys === [...this.lines.keys()].join("|")) return;
    for (const l of this.lines.values()) l.dispose();
    this.lines.clear();
    this.drawn = null;
    for (const s of series) {
      const line = this.chart
        .addPointLineAreaSeries({ schema: SCHEMA })
        .setName(s.label)
        .setAreaFillStyle(this.lc.emptyFill)
        .setPointFillStyle(this.lc.emptyFill)
        .setStrokeStyle((st) => st.setFillStyle(new this.lc.SolidFill({ color: this.lc.ColorCSS(s.color) })))
        .setMaxSampleCount(MAX_SAMPLES);
      this.lines.set(s.key, line);
    }
  }

  // Streams: only the rows after the last drawn are appended while the window moves forward; the
  // x axis shows the window, and the library drops samples beyond MAX_SAMPLES.
  setData(x: Float64Array, columns: Record<string, Float64Array>, bands: Band[] = []): void {
    let points = 0;
    const from = appendFrom(this.drawn, x);
    for (const [key, line] of this.lines) {
      const col = columns[key];
      const xs: number[] = [];
      const ys: number[] = [];
      if (col) {
        for (let i = 0; i < x.length; i++) {
          const v = col[i];
          if (v === undefined || Number.isNaN(v)) continue;
          points++;
          if (i >= from) {
            xs.push(x[i] as number);
            ys.push(v);
          }
        }
      }
      if (from < 0) line.clear();
      if (xs.length) line.appendSamples({ x: xs, y: ys });
    }
    this.points = points;
    if (x.length) {
      this.drawn = { first: x[0] as number, last: x[x.length - 1] as number };
      const end = this.drawn.last > this.drawn.first ? this.drawn.last : this.drawn.first + 1;
      this.chart.getDefaultAxisX().setInterval({ start: this.drawn.first, end });
    }
    for (const b of this.bandObjects) b.dispose();
    this.bandObjects = bands.map((b) =>
      this.chart
        .getDefaultAxisX()
        .addBand({ onTop: false })
        .setValueStart(b.start)
        .setValueEnd(b.end)
        .setFillStyle(new this.lc.SolidFill({ color: this.lc.ColorCSS(b.color) })),
    );
  }

  resize(): void {
    // LightningChart follows its container's size.
  }

  pointCount(): number {
    return this.points;
  }

  destroy(): void {
    this.chart.dispose();
  }
}

/** The operator's LightningChart JS bundle, from the server; it defines the global `lcjs`. */
function loadScript(): Promise<Lcjs> {
  const w = window as unknown as { lcjs?: Lcjs };
  if (w.lcjs) return Promise.resolve(w.lcjs);
  return new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = "/lcjs/lcjs.js";
    s.onload = () => (w.lcjs ? ok(w.lcjs) : fail(new Error("the bundle did not define lcjs")));
    s.onerror = () => fail(new Error("the server has no LightningChart JS bundle (--lcjs-module)"));
    document.head.appendChild(s);
  });
}

/** Loads LightningChart JS with `license`; resolves with a renderer, or the reason it was refused. */
export async function loadLcjs(
  license: string | undefined,
  licenseInformation?: Record<string, string>,
): Promise<{ renderer: Renderer } | { refused: string }> {
  let lc: Lcjs;
  try {
    lc = await loadScript();
  } catch (e) {
    return { refused: `could not load LightningChart JS: ${String(e)}` };
  }
  let instance: ReturnType<Lcjs["lightningChart"]>;
  const probe = document.createElement("div");
  probe.style.cssText = "position:fixed;left:-10000px;top:0;width:320px;height:160px";
  document.body.appendChild(probe);
  try {
    // A deployment key is checked against the licence information it was issued for.
    // (The server accepts it only with both fields.)
    const info = licenseInformation as { company: string; appTitle: string; [key: string]: string } | undefined;
    instance = license ? lc.lightningChart({ license, licenseInformation: info }) : lc.lightningChart();
    const chart = instance.ChartXY({ container: probe });
    chart
      .addPointLineAreaSeries({ schema: SCHEMA })
      .appendSamples({ x: [0, 1, 2], y: [0, 1, 0] });
    // The licence check is asynchronous: watch the container for its notice for a while.
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const err = licenceError(probe);
      if (err) {
        chart.dispose();
        return { refused: err };
      }
    }
    chart.dispose();
  } catch (e) {
    return { refused: `LightningChart JS failed: ${String(e)}` };
  } finally {
    probe.remove();
  }
  return {
    renderer: {
      name: "LightningChart JS",
      create: (container, options) => new LcjsChart(lc, instance, container, options),
    },
  };
}
