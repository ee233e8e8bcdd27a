// A small line chart on a canvas for a short series (a training round's epochs): the values,
// their range written at the left, and one unit named in the caption.

/** Canvas points (x, y) of `values` in a `w`×`h` box with `pad` pixels left for labels; NaN skipped. */
export function curvePoints(values: number[], w: number, h: number, pad = 4): [number, number][] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [];
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const span = hi - lo || 1;
  const n = Math.max(1, values.length - 1);
  const out: [number, number][] = [];
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    out.push([pad + ((w - 2 * pad) * i) / n, h - pad - ((h - 2 * pad) * (v - lo)) / span]);
  });
  return out;
}

/** Draws `values` on `canvas` (CSS size `w`×`h`) in `colour`, with the least and greatest value. */
export function drawCurve(canvas: HTMLCanvasElement, values: number[], colour: string, digits = 3): void {
  const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
  const w = canvas.clientWidth || 220;
  const h = canvas.clientHeight || 56;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 44;
  const pts = curvePoints(values, w - left, h);
  const finite = values.filter(Number.isFinite);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = getComputedStyle(canvas).color || "#8b98a9";
  if (finite.length) {
    ctx.fillText(Math.max(...finite).toFixed(digits), 0, 10);
    ctx.fillText(Math.min(...finite).toFixed(digits), 0, h - 2);
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x + left, y) : ctx.lineTo(x + left, y)));
  ctx.stroke();
  for (const [x, y] of pts) ctx.fillRect(x + left - 1.5, y - 1.5, 3, 3);
}
