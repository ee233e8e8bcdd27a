// The default renderer: uPlot (MIT), small and fast.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { themeColour } from "../theme";
import type { Band, ChartOptions, Renderer, SeriesSpec, TimeChart } from "./types";


function axis(): { stroke: string; grid: { stroke: string; width: number }; ticks: { stroke: string; width: number } } {
  const grid = themeColour("--grid", "#2a313c");
  return { stroke: themeColour("--axis", "#9aa5b1"), grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
}

class UPlotChart implements TimeChart {
  private plot: uPlot | null = null;
  private series: SeriesSpec[];
  private bands: Band[] = [];
  private points = 0;
  private width: number;

  constructor(
    private readonly container: HTMLElement,
    private readonly options: ChartOptions,
  ) {
    this.series = options.series;
    this.width = Math.max(200, container.clientWidth || 400);
    this.build([[]] as unknown as uPlot.AlignedData);
  }

  private build(data: uPlot.AlignedData): void {
    this.plot?.destroy();
    const opts: uPlot.Options = {
      width: this.width,
      height: this.options.height,
      title: this.options.title,
      // Hovering a chart shows the time and every series' value there in the legend.
      legend: { show: true, live: true },
      cursor: { show: true, drag: { x: false, y: false, setScale: false }, points: { show: false } },
      scales: { x: { time: false }, y: this.options.yRange ? { range: this.options.yRange } : { auto: true } },
      axes: [
        { ...axis(), label: this.options.xLabel ?? "scene time (s)", size: 36, labelSize: 14 },
        { ...axis(), label: this.options.yLabel, size: 52, labelSize: 14 },
      ],
      series: [
        {},
        ...this.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: false,
          points: { show: false },
        })),
      ],
      hooks: {
        drawClear: [
          (u: uPlot) => {
            const ctx = u.ctx;
            for (const b of this.bands) {
              const x0 = u.valToPos(b.start, "x", true);
              const x1 = u.valToPos(b.end, "x", true);
              const left = Math.max(u.bbox.left, Math.min(x0, x1));
              const right = Math.min(u.bbox.left + u.bbox.width, Math.max(x0, x1));
              if (right <= left) continue;
              ctx.fillStyle = b.color;
              ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
            }
          },
        ],
      },
    };
    const cols = data as unknown as unknown[][];
    while (cols.length < this.series.length + 1) cols.push([]);
    this.plot = new uPlot(opts, data, this.container);
  }

  setSeries(series: SeriesSpec[]): void {
    const same =
      series.length === this.series.length && series.every((s, i) => s.key === this.series[i]?.key);
    if (same) return;
    this.series = series;
    this.build([[]] as unknown as uPlot.AlignedData);
  }

  setData(x: Float64Array, columns: Record<string, Float64Array>, bands: Band[] = []): void {
    this.bands = bands;
    const xs = Array.from(x);
    const data: uPlot.AlignedData = [xs];
    let points = 0;
    for (const s of this.series) {
      const col = columns[s.key];
      const ys: (number | null)[] = new Array<number | null>(xs.length);
      for (let i = 0; i < xs.length; i++) {
        const v = col ? col[i] : undefined;
        if (v === undefined || Number.isNaN(v)) ys[i] = null;
        else {
          ys[i] = v;
          points++;
        }
      }
      data.push(ys);
    }
    this.points = points;
    this.plot?.setData(data);
  }

  resize(width: number): void {
    this.width = Math.max(200, width);
    this.plot?.setSize({ width: this.width, height: this.options.height });
  }

  pointCount(): number {
    return this.points;
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}

export const uplotRenderer: Renderer = {
  name: "uPlot",
  create: (container, options) => new UPlotChart(container, options),
};
