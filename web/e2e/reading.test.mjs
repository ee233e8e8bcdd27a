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
