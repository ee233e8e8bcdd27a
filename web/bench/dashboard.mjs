// Browser benchmark of the dashboard: starts the real server and measures, in headless Chromium
// with every panel on screen and streaming: DOMContentLoaded, first contentful paint, first data
// drawn, long tasks (> 50 ms) after load, frames per second, JS heap over time, and the
// JavaScript transferred (gzipped, as served).
//
//   node bench/dashboard.mjs [--seconds 60] [--heap-minutes 0] [--json]
//
// Uses WAYPOINT_BIN or target/release/waypoint (build it first: cargo build --release).
import http from "node:http";
import { launchBrowser, startServer } from "../e2e/harness.mjs";

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

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const seconds = arg("seconds", 60);
const heapMinutes = arg("heap-minutes", 0);
const asJson = process.argv.includes("--json");

const server = startServer();
const url = await server.url;
const browser = await launchBrowser();
const result = {};
try {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 2200 }); // every panel on screen
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  // Every script the page (or its worker) requested; sized below as the server sends them.
  const scriptUrls = new Set();
  page.on("request", (req) => {
    if (/\.m?js(\?|$)/.test(req.url())) scriptUrls.add(req.url());
  });
  await page.addInitScript(() => {
    window.__bench = { longTasks: [], frames: 0 };
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__bench.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
    const tick = () => {
      window.__bench.frames++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const cdp = await page.context().newCDPSession(page);
  await page.goto(url + "/", { waitUntil: "load" });
  await page.waitForFunction(() => performance.getEntriesByName("waypoint:first-data").length > 0, null, {
    timeout: 10000,
  });
  const t = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    const first = performance.getEntriesByName("waypoint:first-data")[0];
    return {
      dom_content_loaded_ms: nav.domContentLoadedEventEnd,
      load_ms: nav.loadEventEnd,
      first_contentful_paint_ms: fcp ? fcp.startTime : null,
      first_data_drawn_ms: first.startTime,
      marks: Object.fromEntries(performance.getEntriesByType("mark").map((m) => [m.name, m.startTime])),
      resources: performance.getEntriesByType("resource").map((r) => [r.name.split("/").pop(), r.startTime, r.responseEnd]),
    };
  });
  Object.assign(result, t);
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
  result.longest_task_ms = longs.reduce((a, [, d]) => Math.max(a, d), 0);
  const all = await page.evaluate(() => window.__bench.longTasks);
  result.long_tasks_during_load = all.length - longs.length;
  result.heap_mb = [await heap()];
  for (let m = 0; m < heapMinutes; m++) {
    await page.waitForTimeout(60000);
    result.heap_mb.push(await heap());
  }
  result.points = await page.evaluate(() => window.__waypoint.points());
  result.scripts = [];
  for (const u of scriptUrls) result.scripts.push([u.replace(url, ""), await gzippedBytes(u)]);
  result.js_transferred_kb = result.scripts.reduce((a, [, b]) => a + b, 0) / 1024;
  result.page_errors = errors;
} finally {
  await browser.close();
  await server.stop();
}
if (asJson) console.log(JSON.stringify(result, null, 2));
else {
  const f = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  console.log(`DOMContentLoaded        ${f(result.dom_content_loaded_ms)} ms`);
  console.log(`first contentful paint  ${f(result.first_contentful_paint_ms)} ms`);
  console.log(`first data drawn        ${f(result.first_data_drawn_ms)} ms`);
  console.log(`long tasks after load   ${result.long_tasks_after_load} over ${f(result.measured_seconds, 0)} s (longest ${f(result.longest_task_ms)} ms)`);
  console.log(`frames per second       ${f(result.fps)}`);
  console.log(`JS heap (MB, per minute) ${result.heap_mb.map((h) => f(h, 2)).join(" ")}`);
  console.log(`JS transferred          ${f(result.js_transferred_kb)} KB (gzip): ${result.scripts.map(([u, b]) => `${u} ${f(b / 1024)} KB`).join(", ")}`);
  console.log(`page errors             ${result.page_errors.length}`);
}
