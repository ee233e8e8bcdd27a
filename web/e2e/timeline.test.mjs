// The timeline against the real server in headless Chromium: pausing freezes this page's view
// while the scene runs on; scrubbing back shows the scene view and every chart as they were at
// the chosen time; "Back to live" follows the scene again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

test("pause, scrub back and return to live: the scene view and the charts move together", async () => {
  const server = startServer();
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.setViewportSize({ width: 1280, height: 2200 });
    await page.goto(url + "/");
    // Some history first: ten seconds of scene.
    await page.waitForFunction(() => window.__waypoint !== undefined && window.__waypoint.sceneTime() > 10, null, { timeout: 30000 });
    assert.match(await page.textContent("#tl-state"), /^live · \d+ s kept to scrub back/);

    await page.click("#tl-pause");
    const pausedAt = await page.evaluate(() => window.__waypoint.viewing());
    assert.ok(pausedAt > 9, `paused at ${pausedAt}`);
    await page.waitForFunction(() => window.__waypoint.sceneTime() <= window.__waypoint.viewing(), null, { timeout: 3000 });
    const frozen = await page.evaluate(() => window.__waypoint.sceneTime());
    // The scene runs on for everyone else: the server's time moves, the page's view does not.
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.__waypoint.sceneTime()), frozen);
    const serverT = (await (await fetch(url + "/api/v1/scene")).json()).t_secs;
    assert.ok(serverT > frozen + 1, `server at ${serverT}, view at ${frozen}`);
    assert.match(await page.textContent("#tl-state"), /^paused at scene [\d.]+ s · \d+ s behind live$/);
    assert.equal(await page.textContent("#tl-pause"), "Back to live");

    // Scrub back to 4 s after the start of the kept span: the scene and the charts end there.
    const min = Number(await page.getAttribute("#tl-scrub", "min"));
    const target = min + 4;
    await page.locator("#tl-scrub").fill(String(target));
    await page.waitForFunction((t) => Math.abs(window.__waypoint.sceneTime() - t) < 0.25, target, { timeout: 5000 });
    // The charts draw at the next animation frame after the scene took the frame.
    try {
      await page.waitForFunction((t) => window.__waypoint.shownUntil().health <= t + 1e-6, target, { timeout: 5000 });
    } catch {
      assert.fail(`the health chart never came back to ${target}: ${JSON.stringify(await page.evaluate(() => window.__waypoint.shownUntil()))}`);
    }
    const shown = await page.evaluate(() => window.__waypoint.shownUntil());
    assert.ok(shown.health <= target + 1e-6 && shown.health > target - 0.5, `health chart ends at ${shown.health}, view at ${target}`);
    for (const [panel, until] of Object.entries(shown))
      if (Number.isFinite(until)) assert.ok(until <= target + 1e-6, `${panel} chart ends at ${until}, after the viewed ${target}`);
    assert.equal(await page.evaluate(() => document.body.classList.contains("viewing-past")), true);

    // Back to live: the view follows the scene again.
    await page.click("#tl-pause");
    await page.waitForFunction((t) => window.__waypoint.viewing() === null && window.__waypoint.sceneTime() > t + 1, serverT, {
      timeout: 5000,
    });
    assert.match(await page.textContent("#tl-state"), /^live · /);
    assert.equal(await page.evaluate(() => document.body.classList.contains("viewing-past")), false);
    const live = await page.evaluate(() => window.__waypoint.shownUntil().health);
    assert.ok(live > serverT, `health chart live again (${live} > ${serverT})`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
