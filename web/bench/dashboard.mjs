// Browser benchmark of the dashboard: starts the real server and, in headless Chromium, for each
// viewport and device pixel ratio asked for, measures an empty canvas page and then the
// dashboard in the same browser (each loaded three times, the medians): DOMContentLoaded, first contentful paint, first data drawn,
// long tasks (> 50 ms) after load, frames per second, the page's JS heap over time, the bytes the
// timeline holds, and the JavaScript transferred (gzipped, as served). `--burn` runs a process
// that keeps one core busy for the whole run (the "busy machine" case).
//
//   node bench/dashboard.mjs [--seconds 60] [--heap-minutes 0] [--configs 1600x1000@1,1280x2200@2]
//                            [--burn] [--json]
//
// Uses WAYPOINT_BIN or the newest of target/release and target/debug (build it first:
// cargo build --release).
import { fork } from "node:child_process";
import http from "node:http";
import { launchBrowser, startServer } from "../e2e/harness.mjs";

// The busy process of --burn: this script again, spinning until it is killed.
if (process.argv.includes("--burner-child")) for (;;) Math.sqrt(Math.random());

/** Bytes on the wire for `url` when the client accepts gzip. */
function gzippedBytes(url) {
  return new Promise((ok, fail) => {
    http
      .get(url, { headers: { "accept-encoding": "gzip" } }, (res) => {
        let n = 0;
        res.on("data", (d) => (n += d.length));
        res.on("end", () => ok(n));
      })
      .on("error", fail);
  });
}

const argOf = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const seconds = Number(argOf("seconds") ?? 60);
const heapMinutes = Number(argOf("heap-minutes") ?? 0);
const configs = (argOf("configs") ?? "1600x1000@1,1280x2200@1,1600x1000@2,1280x2200@2").split(",").map((c) => {
  const m = /^(\d+)x(\d+)@([\d.]+)$/.exec(c.trim());
  if (!m) throw new Error(`--configs: "${c}" is not WIDTHxHEIGHT@DPR`);
  return { width: Number(m[1]), height: Number(m[2]), dpr: Number(m[3]) };
});
const burn = process.argv.includes("--burn");
const asJson = process.argv.includes("--json");

// The empty page: a full-window canvas, nothing else (what any page costs in this browser).
const EMPTY = `<!doctype html><html><head><meta charset="utf-8"><title>empty</title></head><body style="margin:0">
<canvas id="c" style="width:100vw;height:100vh;display:block"></canvas>
<script>const c=document.getElementById("c");c.width=innerWidth*devicePixelRatio;c.height=innerHeight*devicePixelRatio;
c.getContext("2d").fillRect(0,0,10,10);</script></body></html>`;
const empty = http.createServer((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(EMPTY));
await new Promise((ok) => empty.listen(0, "127.0.0.1", ok));
const emptyUrl = `http://127.0.0.1:${empty.address().port}/`;

const INIT = () => {
  window.__bench = { longTasks: [], frames: 0 };
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.__bench.longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
  const tick = () => {
    window.__bench.frames++;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
};

const navTiming = () => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return { dcl: nav.domContentLoadedEventEnd, fcp: fcp ? fcp.startTime : null };
};

async function measureEmpty(page) {
  // Three loads, the median (one load is noisy on 2 cores).
  const runs = [];
  for (let i = 0; i < 3; i++) {
    await page.goto(emptyUrl + `?${i}`, { waitUntil: "load" });
    await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0, null, { timeout: 5000 });
    runs.push(await page.evaluate(navTiming));
  }
  const med = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[1];
  return { dom_content_loaded_ms: med("dcl"), first_contentful_paint_ms: med("fcp") };
}

async function measure(server, url, { width, height, dpr }) {
  const browser = await launchBrowser({ viewport: { width, height }, deviceScaleFactor: dpr });
  const result = { viewport: `${width}x${height}`, dpr };
  try {
    const page = await browser.context.newPage();
    result.empty_page = await measureEmpty(page);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    const scriptUrls = new Set();
    page.on("request", (req) => {
      if (/\.m?js(\?|$)/.test(req.url())) scriptUrls.add(req.url());
    });
    await page.addInitScript(INIT);
    const cdp = await page.context().newCDPSession(page);
    // Three loads like the empty page's, the median of each; the last load stays for the rest.
    const loads = [];
    for (let i = 0; i < 3; i++) {
      await page.goto(url + `/?load=${i}`, { waitUntil: "load" });
      await page.waitForFunction(() => performance.getEntriesByName("waypoint:first-data").length > 0, null, { timeout: 30000 });
      loads.push(
        await page.evaluate(() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const fcp = performance.getEntriesByName("first-contentful-paint")[0];
          const first = performance.getEntriesByName("waypoint:first-data")[0];
          return {
            dom_content_loaded_ms: nav.domContentLoadedEventEnd,
            first_contentful_paint_ms: fcp ? fcp.startTime : null,
            first_data_drawn_ms: first.startTime,
            first_data_after_paint_ms: fcp ? first.startTime - fcp.startTime : null,
          };
        }),
      );
    }
    for (const k of Object.keys(loads[0])) result[k] = loads.map((l) => l[k]).sort((a, b) => a - b)[1];
    const t = result;
    result.dcl_vs_empty = t.dom_content_loaded_ms / result.empty_page.dom_content_loaded_ms;
    result.fcp_vs_empty = t.first_contentful_paint_ms / result.empty_page.first_contentful_paint_ms;
    // Let every chart panel fill (trajectory errors arrive after ~9 s), then measure.
    await page.waitForTimeout(10000);
    const heap = async () => {
      await cdp.send("HeapProfiler.collectGarbage");
      const h = await cdp.send("Runtime.getHeapUsage");
      return h.usedSize / 2 ** 20;
    };
    const loadEnd = await page.evaluate(() => performance.now());
    const f0 = await page.evaluate(() => window.__bench.frames);
    const w0 = Date.now();
    await page.waitForTimeout(seconds * 1000);
    const f1 = await page.evaluate(() => window.__bench.frames);
    const elapsed = (Date.now() - w0) / 1000;
    result.measured_seconds = elapsed;
    result.fps = (f1 - f0) / elapsed;
    const longs = await page.evaluate((from) => window.__bench.longTasks.filter(([s]) => s >= from), loadEnd);
    result.long_tasks_after_load = longs.length;
    result.long_tasks_per_minute = (longs.length * 60) / elapsed;
    result.longest_task_ms = longs.reduce((a, [, d]) => Math.max(a, d), 0);
    result.heap_mb = [await heap()];
    for (let m = 0; m < heapMinutes; m++) {
      await page.waitForTimeout(60000);
      result.heap_mb.push(await heap());
    }
    result.timeline_mb = (await page.evaluate(() => window.__waypoint.timelineBytes())) / 1e6;
    result.scripts = [];
    for (const u of scriptUrls) result.scripts.push([u.replace(url, ""), await gzippedBytes(u)]);
    result.js_transferred_kb = result.scripts.reduce((a, [, b]) => a + b, 0) / 1024;
    result.page_errors = errors;
  } finally {
    await browser.close();
  }
  return result;
}

const burner = burn
  ? fork(new URL(import.meta.url), ["--burner-child"], { stdio: "ignore" })
  : null;
const server = startServer();
const url = await server.url;
const results = [];
try {
  for (const c of configs) results.push(await measure(server, url, c));
} finally {
  burner?.kill("SIGKILL");
  await server.stop();
  empty.close();
}
if (asJson) console.log(JSON.stringify({ burn, seconds, results }, null, 2));
else {
  const f = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  console.log(`${burn ? "with one core kept busy by another process" : "idle machine"}, ${seconds} s per configuration`);
  for (const r of results) {
    console.log(`\n${r.viewport} at DPR ${r.dpr}`);
    console.log(`  DOMContentLoaded        ${f(r.dom_content_loaded_ms)} ms (empty page ${f(r.empty_page.dom_content_loaded_ms)} ms, ${f(r.dcl_vs_empty, 2)}×)`);
    console.log(`  first contentful paint  ${f(r.first_contentful_paint_ms)} ms (empty page ${f(r.empty_page.first_contentful_paint_ms)} ms, ${f(r.fcp_vs_empty, 2)}×)`);
    console.log(`  first data drawn        ${f(r.first_data_drawn_ms)} ms (${f(r.first_data_after_paint_ms)} ms after first paint)`);
    console.log(`  long tasks after load   ${r.long_tasks_after_load} over ${f(r.measured_seconds, 0)} s (longest ${f(r.longest_task_ms)} ms)`);
    console.log(`  frames per second       ${f(r.fps)}`);
    console.log(`  JS heap (MB, per minute) ${r.heap_mb.map((h) => f(h, 2)).join(" ")} · timeline ${f(r.timeline_mb, 2)} MB`);
    console.log(`  JS transferred          ${f(r.js_transferred_kb)} KB (gzip)`);
    console.log(`  page errors             ${r.page_errors.length}`);
  }
}
