// The minimal status page at `/status` shows live data from every stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

test("status page connects and counts live data on every stream", async () => {
  const server = startServer();
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.goto(url + "/status");
    await page.waitForFunction(() => document.getElementById("state").textContent === "open", null, { timeout: 10000 });
    // Every stream has delivered messages and shows what it carried.
    await page.waitForFunction(
      () =>
        ["scene", "truth", "lidar", "radar", "camera", "imu", "gps", "predictions", "tracks", "health", "evaluation"].every(
          (s) => Number(document.querySelector(`#row-${s} .n`).textContent) > 2,
        ),
      null,
      { timeout: 25000 },
    );
    const lidarLast = await page.textContent("#row-lidar .last");
    const points = Number(lidarLast.split(" ")[0]);
    assert.ok(points > 1000, `lidar sweep of ${points} points`);
    assert.equal(await page.textContent("#agents"), "12");
    // The models' streams say which model produced them.
    assert.match(await page.textContent("#row-predictions .last"), /agents \(trajectory(_road)? v\d+\)/);
    assert.match(await page.textContent("#row-tracks .last"), /\d+ tracks, \d+ detections/);
    const t1 = Number(await page.textContent("#t"));
    await page.waitForTimeout(1200);
    const t2 = Number(await page.textContent("#t"));
    assert.ok(t2 > t1, `scene time advances (${t1} -> ${t2})`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
