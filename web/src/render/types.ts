// The small interface both chart renderers implement.

export interface SeriesSpec {
  /** Key of the column in the data. */
  key: string;
  label: string;
  color: string;
  dash?: boolean;
}

export interface Band {
  start: number;
  end: number;
  color: string;
}

export interface ChartOptions {
  title: string;
  /** Label of the x axis (default: scene time). */
  xLabel?: string;
  yLabel: string;
  series: SeriesSpec[];
  /** Fixed y range; auto when absent. */
  yRange?: [number, number];
  height: number;
}

export interface TimeChart {
  /** Replaces the series (when the set of versions changes). */
  setSeries(series: SeriesSpec[]): void;
  /** Replaces the data: shared x and one column per series (NaN = gap), and shaded x spans. */
  setData(x: Float64Array, columns: Record<string, Float64Array>, bands?: Band[]): void;
  resize(width: number): void;
  /** Points drawn in the last update (for tests). */
  pointCount(): number;
  destroy(): void;
}

export interface Renderer {
  readonly name: string;
  create(container: HTMLElement, options: ChartOptions): TimeChart;
}
