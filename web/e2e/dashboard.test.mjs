// The dashboard at `/` against the real server in headless Chromium: every panel draws data,
// every control has its effect on the server, the page reconnects after a restart, and the
// LightningChart JS path (the operator's own copy, never ours) falls back cleanly without a valid
// key or without the library.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

const wp = (page, expr) => page.evaluate(expr);

async function openDashboard(browser, url, query = "") {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  await page.goto(url + "/" + query);
  try {
    await page.waitForFunction(() => window.__waypoint !== undefined, null, { timeout: 30000 });
  } catch (e) {
    // Say what the page saw (its errors, whether its entry ran) instead of a bare timeout.
    const boot = await page.evaluate(() => ({ boot: window.__boot !== undefined, ready: document.readyState }));
    throw new Error(`the dashboard did not start: ${e.message}; ${JSON.stringify(boot)}; errors ${JSON.stringify(errors)}`);
  }
  return { page, errors };
}

/** The number of distinct colours in a canvas (a blank canvas has one). */
async function canvasColours(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 16) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return seen.size;
  }, selector);
}

test("every panel draws live data, every control acts on the server, without errors", async () => {
  const server = startServer();
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const { page, errors } = await openDashboard(browser, url);
    assert.equal(await wp(page, () => window.__waypoint.renderer), "uPlot");
    assert.equal(await page.isVisible("#renderer-note"), false);
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    // Scene: agents drawn, a lidar sweep drawn, the canvas is not blank.
    await page.waitForFunction(() => window.__waypoint.agents() === 12 && window.__waypoint.lidarDrawn() > 1000, null, {
      timeout: 15000,
    });
    assert.ok((await canvasColours(page, ".scene-canvas")) > 8, "scene canvas has content");
    // A hidden panel stops drawing while the others go on, and resumes when shown again.
    await page.waitForFunction(() => window.__waypoint.draws().health > 3, null, { timeout: 10000 });
    await page.click("#panel-health .collapse");
    const hidden = await wp(page, () => window.__waypoint.draws());
    await page.waitForTimeout(1500);
    const later = await wp(page, () => window.__waypoint.draws());
    assert.equal(later.health, hidden.health, "a hidden panel drew");
    assert.ok(later.scene > hidden.scene, "the scene stopped drawing");
    await page.click("#panel-health .collapse");
    await page.waitForFunction((n) => window.__waypoint.draws().health > n, hidden.health, { timeout: 5000 });
    // Every panel on screen.
    await page.setViewportSize({ width: 1280, height: 2200 });
    // Every chart panel has drawn points (trajectory errors need 3.2 s of history + 4.8 s).
    await page.waitForFunction(
      () => {
        const p = window.__waypoint.points();
        return ["health", "trajectory", "detection", "fusion", "performance", "learning"].every(
          (k) => p[k].length > 0 && p[k].every((n) => n > 0),
        );
      },
      null,
      { timeout: 40000 },
    );
    for (const id of ["health", "trajectory", "detection", "fusion", "performance", "learning"]) {
      assert.equal(await page.isVisible(`#panel-${id} .empty`), false, `${id} still says no data`);
      assert.ok((await canvasColours(page, `#panel-${id} canvas`)) > 3, `${id} chart canvas has content`);
    }
    assert.match(await page.textContent("#panel-detection .bars"), /vehicle/);
    // The baselines scored on the same tracks are drawn beside the versions.
    assert.match(await page.textContent("#panel-trajectory"), /constant velocity \(baseline\) ade_m/);
    assert.match(await page.textContent("#panel-trajectory"), /kalman \(baseline\) ade_m/);
    assert.match(await page.textContent("#panel-performance table"), /trajectory/);

    // Add agent: one more agent in the stream.
    await page.selectOption("#agent-kind", "pedestrian");
    await page.click("#add-agent");
    await page.waitForFunction(() => window.__waypoint.agents() === 13, null, { timeout: 5000 });
    assert.match(await page.textContent("#command-status"), /agent \d+ added/);

    // Scene speed: the server runs the scene at the picked rate, and back.
    await page.selectOption("#scene-speed", "2");
    await page.waitForFunction(() => /set_rate: ok/.test(document.getElementById("command-status").textContent), null, { timeout: 5000 });
    // The scene's status is published with its next tick: read until it says so.
    for (let i = 0; (await (await fetch(url + "/api/v1/scene")).json()).speed !== 2; i++) {
      assert.ok(i < 50, "the scene runs at twice real time");
      await page.waitForTimeout(100);
    }
    await page.selectOption("#scene-speed", "1");
    for (let i = 0; (await (await fetch(url + "/api/v1/scene")).json()).speed !== 1; i++) {
      assert.ok(i < 50, "the scene went back to real time");
      await page.waitForTimeout(100);
    }

    // Inject a dropout on the radar: its anomaly score rises to an alarm.
    await page.selectOption("#fault-sensor", "radar");
    await page.selectOption("#fault-kind", "dropout");
    await page.fill("#fault-duration", "4");
    const before = Number(await page.getAttribute('.chip[data-sensor="radar"]', "data-score"));
    await page.click("#inject-fault");
    await page.waitForFunction(
      () => document.querySelector('.chip[data-sensor="radar"]')?.classList.contains("alarm"),
      null,
      { timeout: 6000 },
    );
    const during = Number(await page.getAttribute('.chip[data-sensor="radar"]', "data-score"));
    assert.ok(during > before && during >= 0.99, `radar score ${before} -> ${during}`);
    assert.match(await page.textContent("#command-status"), /dropout on radar/);

    // Threshold slider: the health stream reports the new threshold.
    await page.evaluate(() => {
      const s = document.getElementById("threshold");
      s.value = "0.9";
      s.dispatchEvent(new Event("input"));
      s.dispatchEvent(new Event("change"));
    });
    await page.waitForFunction(() => /set_threshold: ok/.test(document.getElementById("command-status").textContent), null, {
      timeout: 5000,
    });

    // Disable a sensor: the scene reports it off and its chip says so.
    await page.uncheck("#sensor-camera");
    await page.waitForFunction(() => document.querySelector('.chip[data-sensor="camera"]')?.classList.contains("off"), null, {
      timeout: 5000,
    });
    await page.check("#sensor-camera");

    // Stop and start.
    await page.click("#run");
    await page.waitForFunction(() => document.getElementById("run").textContent === "Start", null, { timeout: 5000 });
    await page.click("#run");
    await page.waitForFunction(() => document.getElementById("run").textContent === "Stop", null, { timeout: 5000 });

    // Clear, then reset with a seed: the agents come back, with that seed.
    await page.click("#clear");
    await page.waitForFunction(() => window.__waypoint.agents() === 0, null, { timeout: 5000 });
    await page.fill("#seed", "7");
    await page.click("#reset");
    await page.waitForFunction(() => /seed 7 · 12 agents/.test(document.querySelector(".scene-info").textContent), null, {
      timeout: 5000,
    });

    // Pick a model version: the server pins it for everyone, and the performance panel says so.
    await page.selectOption("#trajectory-version", "1");
    await page.waitForFunction(() => /trajectory model: version 1/.test(document.getElementById("command-status").textContent), null, {
      timeout: 5000,
    });
    const routing = await (await fetch(url + "/api/v1/models/trajectory/routing")).json();
    assert.equal(routing.policy, "fixed");
    assert.equal(routing.version, "1");
    await page.waitForFunction(() => /trajectory: version 1 for everyone/.test(document.querySelector("#panel-performance .routing").textContent), null, {
      timeout: 8000,
    });
    await page.selectOption("#trajectory-version", "newest");
    await page.waitForFunction(() => /trajectory model: newest version/.test(document.getElementById("command-status").textContent), null, {
      timeout: 5000,
    });

    // A bad command is reported on the page, not thrown.
    await page.fill("#fault-duration", "-3");
    await page.click("#inject-fault");
    await page.waitForFunction(() => /inject_fault failed/.test(document.getElementById("command-status").textContent), null, {
      timeout: 5000,
    });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("a page whose code loads late still starts with what its worker said meanwhile", async () => {
  // The worker starts first and talks (connection, cluster, timeline) before the page's code
  // has loaded; held back 2 s here, that code must take those messages and start.
  const server = startServer(["--paused"]);
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.route(/\/assets\/app-[^/]*\.js$/, async (route) => {
      await new Promise((ok) => setTimeout(ok, 2000));
      await route.continue();
    });
    await page.goto(url + "/");
    await page.waitForFunction(() => window.__waypoint !== undefined, null, { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("the dashboard reconnects by itself after the server restarts", async () => {
  let server = startServer();
  const url = await server.url;
  const addr = url.replace("http://", "");
  const browser = await launchBrowser();
  try {
    const { page, errors } = await openDashboard(browser, url);
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    await server.stop();
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "closed", null, { timeout: 10000 });
    server = startServer([], addr);
    await server.url;
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 20000 });
    const draws = await wp(page, () => window.__waypoint.draws().scene);
    await page.waitForFunction((d) => window.__waypoint.draws().scene > d + 5, draws, { timeout: 10000 });
    // The WebSocket error of the failed reconnection attempts is the browser's, not the page's.
    assert.deepEqual(
      errors.filter((e) => !/WebSocket connection to .* failed/.test(e)),
      [],
    );
  } finally {
    await browser.close();
    await server.stop();
  }
});

// The operator's own copy of LightningChart JS (here: the package the dashboard's types come
// from); Waypoint's build and binary contain none of it.
const LCJS_BUNDLE = new URL("../node_modules/@lightningchart/lcjs/dist/lcjs.iife.js", import.meta.url).pathname;

for (const [name, args, query, pattern] of [
  ["a bogus LightningChart key", ["--lcjs-license", "bogus-key-123", "--lcjs-module", LCJS_BUNDLE], "", /invalid/i],
  ["LightningChart without a key", ["--lcjs-module", LCJS_BUNDLE], "?renderer=lcjs", /not supplied/i],
  ["a key but no LightningChart bundle", ["--lcjs-license", "some-key"], "", /--lcjs-module/],
]) {
  test(`with ${name} the page falls back to uPlot and says why`, async () => {
    const server = startServer(args);
    const url = await server.url;
    const browser = await launchBrowser();
    try {
      const { page, errors } = await openDashboard(browser, url, query);
      assert.equal(await wp(page, () => window.__waypoint.renderer), "uPlot");
      const note = await page.textContent("#renderer-note");
      assert.match(note, /LightningChart JS/);
      assert.match(note, pattern);
      assert.equal(await page.getAttribute("#renderer-note", "data-renderer"), "fallback");
      await page.waitForFunction(() => window.__waypoint.points().health[0] > 0, null, { timeout: 15000 });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
}

test("with an API token, the dashboard acts only when its address carries the token, which it then hides", async () => {
  const server = startServer(["--api-token", "e2e-token"]);
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    // Without the token: the page streams, but a scene command is refused and says why.
    const { page: plain } = await openDashboard(browser, url);
    await plain.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    await plain.click("#clear-faults");
    await plain.waitForFunction(() => document.getElementById("command-status").className.includes("err"), null, {
      timeout: 5000,
    });
    assert.match(await plain.textContent("#command-status"), /unauthorized/);
    // With it, given once in the address: the command is taken and the token leaves the address.
    const { page, errors } = await openDashboard(browser, url, "#token=e2e-token");
    assert.equal(await wp(page, () => location.hash), "");
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    await page.click("#clear-faults");
    await page.waitForFunction(() => document.getElementById("command-status").className.includes("ok"), null, {
      timeout: 5000,
    });
    // A reload keeps it for the tab's session.
    await page.reload();
    await page.waitForFunction(() => window.__waypoint !== undefined, null, { timeout: 15000 });
    await page.waitForFunction(() => document.getElementById("conn").dataset.state === "open", null, { timeout: 10000 });
    await page.click("#clear-faults");
    await page.waitForFunction(() => document.getElementById("command-status").className.includes("ok"), null, {
      timeout: 5000,
    });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("every control has an accessible name, results are announced, and a tablet-wide window gets one column", async () => {
  const server = startServer();
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const { page, errors } = await openDashboard(browser, url);
    await page.waitForFunction(() => document.querySelectorAll(".panel").length >= 7, null, { timeout: 15000 });
    // Every input and select is named (its own aria-label or an enclosing label with text).
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll("input, select")]
        .filter((el) => !el.getAttribute("aria-label") && !(el.closest("label")?.textContent ?? "").trim())
        .map((el) => el.id || el.outerHTML.slice(0, 60)),
    );
    assert.deepEqual(unnamed, []);
    // Collapse buttons say what they do and whether the panel is open.
    const toggle = page.locator("#panel-health .collapse");
    assert.equal(await toggle.getAttribute("aria-expanded"), "true");
    assert.match(await toggle.getAttribute("aria-label"), /^Hide /);
    await toggle.click();
    assert.equal(await toggle.getAttribute("aria-expanded"), "false");
    assert.match(await toggle.getAttribute("aria-label"), /^Show /);
    // Command results are a live region; the scene canvas has a text alternative.
    assert.equal(await page.getAttribute("#command-status", "aria-live"), "polite");
    assert.equal(await page.getAttribute(".scene-canvas", "role"), "img");
    await page.waitForFunction(() => /agents/.test(document.getElementById("scene-info").textContent), null, {
      timeout: 10000,
    });
    // 800 px wide: one column, nothing wider than the window.
    await page.setViewportSize({ width: 800, height: 1100 });
    await page.waitForTimeout(300);
    const layout = await page.evaluate(() => ({
      lefts: [...new Set([...document.querySelectorAll(".panel")].map((p) => Math.round(p.getBoundingClientRect().left)))],
      overflow: document.documentElement.scrollWidth - window.innerWidth,
    }));
    assert.equal(layout.lefts.length, 1, `panels in one column: ${layout.lefts}`);
    assert.ok(layout.overflow <= 1, `page wider than the window by ${layout.overflow} px`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
