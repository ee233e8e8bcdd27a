// Reading the dashboard: hovering a chart shows the scene time and each series' value there in
// its legend; the page follows the system's light or dark setting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

test("hover shows values and times; a light system setting gives a light page", async () => {
  const server = startServer();
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.setViewportSize({ width: 1600, height: 1000 });
    await page.goto(url + "/");
    await page.waitForFunction(() => window.__waypoint !== undefined && window.__waypoint.points().health > 20, null, {
      timeout: 20000,
    });
    // The chart drew its series in their colours (not the axes or the grid, which are greys).
    // Healthy sensors score near 0, so their lines lie on one another and the last drawn (gps)
    // covers the rest; hiding it through its legend entry shows the one beneath (imu).
    const colours = () =>
      page.evaluate(() => {
        const c = document.querySelector("#panel-health .uplot canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const want = { lidar: [0x5a, 0xa9, 0xe6], radar: [0xf4, 0xa2, 0x59], camera: [0x9b, 0xc5, 0x3d], imu: [0xe0, 0x57, 0x80], gps: [0xc4, 0xb5, 0xfd] };
        const counts = Object.fromEntries(Object.keys(want).map((k) => [k, 0]));
        for (let i = 0; i < d.length; i += 4) {
          for (const [k, [r, g, b]] of Object.entries(want)) {
            if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 24) counts[k]++;
          }
        }
        return counts;
      });
    const before = await colours();
    assert.ok(before.gps >= 30, `gps drawn: ${JSON.stringify(before)}`);
    await page.locator("#panel-health .uplot").first().locator(".u-legend tr", { hasText: "gps" }).click();
    await page.waitForTimeout(400);
    const after = await colours();
    assert.ok(after.gps < before.gps / 10 && after.imu >= 30, `gps hidden, imu shown: ${JSON.stringify([before, after])}`);
    await page.locator("#panel-health .uplot").first().locator(".u-legend tr", { hasText: "gps" }).click();
    const chart = page.locator("#panel-health .uplot .u-over").first();
    const box = await chart.boundingBox();
    assert.ok(box, "the health chart is on the page");
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height * 0.5);
    const read = () =>
      page.$$eval("#panel-health .uplot:first-of-type .u-legend tr", (rows) =>
        rows.map((r) => [r.querySelector(".u-label")?.textContent ?? "", r.querySelector(".u-value")?.textContent ?? ""]),
      );
    await page.waitForFunction(
      () => {
        const v = document.querySelector("#panel-health .uplot .u-legend tr .u-value");
        return v !== null && /\d/.test(v.textContent ?? "");
      },
      null,
      { timeout: 5000 },
    );
    const legend = await read();
    // The first row is the time base: scene seconds; then the sensors' scores, numbers in [0, 1].
    const [, time] = legend[0];
    assert.ok(Number(time) > 0, `time ${time}`);
    const scores = legend.slice(1).filter(([label]) => ["lidar", "radar", "camera", "imu", "gps"].includes(label.trim()));
    assert.ok(scores.length >= 4, JSON.stringify(legend));
    for (const [label, value] of scores) assert.ok(Number(value) >= 0 && Number(value) <= 1, `${label}: ${value}`);
    // Moving left reads an earlier time.
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await page.waitForTimeout(100);
    const earlier = Number((await read())[0][1]);
    assert.ok(earlier < Number(time), `${earlier} < ${time}`);

    // Dark when the system asks for dark (or says nothing), light when it asks for light.
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: "dark" });
    assert.equal(await background(), "rgb(15, 19, 24)");
    await page.emulateMedia({ colorScheme: "light" });
    assert.equal(await background(), "rgb(244, 246, 249)");
    const text = await page.evaluate(() => getComputedStyle(document.body).color);
    assert.equal(text, "rgb(29, 36, 48)");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("the scene view names what is under the cursor, removes a clicked road user, zooms and pans", async () => {
  // Started paused: the road users are drawn where they stand, and stay there.
  const server = startServer(["--paused"]);
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.setViewportSize({ width: 1600, height: 1400 });
    await page.goto(url + "/");
    await page.waitForFunction(() => window.__waypoint !== undefined && window.__waypoint.sceneAgents().length === 12, null, {
      timeout: 20000,
    });
    assert.match(await page.textContent("#scene-info"), / paused /);
    // The first road user inside the view.
    const agents = await page.evaluate(() => window.__waypoint.sceneAgents());
    const box = await page.locator(".scene-canvas").boundingBox();
    const inside = agents.find((a) => a.at[0] > box.x + 20 && a.at[0] < box.x + box.width - 20 && a.at[1] > box.y + 20 && a.at[1] < box.y + box.height - 20);
    assert.ok(inside, JSON.stringify(agents));
    await page.mouse.move(inside.at[0], inside.at[1]);
    await page.waitForSelector("#scene-hover:not([hidden])", { timeout: 3000 });
    const hover = await page.textContent("#scene-hover");
    assert.match(hover, new RegExp(`^agent ${inside.id} · ${inside.kind} · [\\d.]+ m/s`));

    // Click: its read-out and a button that removes it from the scene (on the server).
    await page.mouse.click(inside.at[0], inside.at[1]);
    await page.waitForSelector("#scene-selected:not([hidden])", { timeout: 3000 });
    assert.equal(await page.textContent("#remove-agent"), `Remove agent ${inside.id}`);
    await page.click("#remove-agent");
    await page.waitForFunction(() => /remove_agent: ok/.test(document.getElementById("command-status").textContent), null, { timeout: 5000 });
    // Gone from the page at once, the scene still paused.
    await page.waitForFunction(() => window.__waypoint.agents() === 11, null, { timeout: 5000 });
    assert.ok(!(await page.evaluate(() => window.__waypoint.sceneAgents())).some((a) => a.id === inside.id));
    const scene = await (await fetch(url + "/api/v1/scene")).json();
    assert.ok(!scene.agents.some((a) => a.id === inside.id));

    // Zoom with the wheel about the cursor, pan by dragging, reset with a double click; keys too.
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    await page.mouse.move(cx + 100, cy);
    await page.mouse.wheel(0, -400);
    await page.waitForFunction(() => window.__waypoint.sceneView().zoom > 1.5, null, { timeout: 3000 });
    const zoomed = await page.evaluate(() => window.__waypoint.sceneView());
    assert.ok(zoomed.cx > 0, "zoomed about a point right of the centre");
    await page.mouse.down();
    await page.mouse.move(cx + 200, cy + 50, { steps: 5 });
    await page.mouse.up();
    const panned = await page.evaluate(() => window.__waypoint.sceneView());
    assert.ok(panned.cx < zoomed.cx && panned.cy > zoomed.cy, JSON.stringify([zoomed, panned]));
    await page.mouse.dblclick(cx, cy);
    assert.deepEqual(await page.evaluate(() => window.__waypoint.sceneView()), { zoom: 1, cx: 0, cy: 0 });
    await page.focus(".scene-canvas");
    await page.keyboard.press("+");
    assert.equal((await page.evaluate(() => window.__waypoint.sceneView())).zoom, 1.25);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
