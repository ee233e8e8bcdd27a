// The lifecycle controls against the real server in headless Chromium: a weighted split, a
// canary and a rollback set through the page (each confirmed first) change the server's routing;
// a cancelled change changes nothing; the server's refusal is shown; unload and load act on the
// repository.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

const routing = async (url, model = "trajectory") => (await fetch(`${url}/api/v1/models/${model}/routing`)).json();

async function confirmApply(page) {
  await page.click("#lc-apply");
  await page.waitForSelector("#lc-confirm:not([hidden])", { timeout: 3000 });
  await page.click("#lc-confirm-yes");
}

async function setWeight(page, version, value) {
  await page.$eval(`#lc-weight-${version}`, (e, v) => {
    e.value = String(v);
    e.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

const statusMatches = (page, re) =>
  page.waitForFunction((src) => new RegExp(src).test(document.getElementById("lc-status").textContent), re.source, { timeout: 8000 });

test("split, canary and rollback through the page change the server's routing; refusals and cancels are honest", async () => {
  const server = startServer(["--paused"]);
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.goto(url + "/");
    // The section starts closed (it shifts nothing on the page until asked for).
    assert.equal(await page.isVisible("#lc-policy"), false);
    await page.click("#lifecycle > summary");
    await page.waitForFunction(() => /loaded v1, v2, v3 · newest version/.test(document.getElementById("lc-state")?.textContent ?? ""), null, {
      timeout: 15000,
    });
    assert.equal(await page.inputValue("#lc-model"), "trajectory");

    // A weighted split, 30 / 70 (and none to v3).
    await page.selectOption("#lc-policy", "split");
    await setWeight(page, "1", 30);
    await setWeight(page, "2", 70);
    await setWeight(page, "3", 0);
    assert.equal(await page.textContent("#lc-weight-2-value"), "70 %");
    // Cancelled: nothing changes on the server.
    await page.click("#lc-apply");
    await page.click("#lc-confirm-no");
    assert.equal((await routing(url)).policy, "newest");
    await confirmApply(page);
    await statusMatches(page, /trajectory: split v1 30 % \/ v2 70 %/);
    const split = await routing(url);
    assert.equal(split.policy, "split");
    assert.ok(Math.abs(split.shares["1"] - 0.3) < 1e-9 && Math.abs(split.shares["2"] - 0.7) < 1e-9, JSON.stringify(split.shares));

    // A split the server refuses (no weight at all): its reason is on the page.
    await setWeight(page, "1", 0);
    await setWeight(page, "2", 0);
    await setWeight(page, "3", 0);
    await confirmApply(page);
    await statusMatches(page, /the server refused: 400/);
    assert.equal((await routing(url)).policy, "split");

    // A canary of v2 against v1: its step and state appear, with promote and roll back.
    await page.selectOption("#lc-policy", "canary");
    await page.selectOption("#lc-incumbent", "1");
    await page.selectOption("#lc-candidate", "2");
    await confirmApply(page);
    await page.waitForFunction(() => /v2 against v1: running, step 1 of 4 at 5 %/.test(document.getElementById("lc-canary-state")?.textContent ?? ""), null, {
      timeout: 8000,
    });
    const canary = await routing(url);
    assert.deepEqual([canary.policy, canary.status, canary.candidate, canary.incumbent], ["canary", "running", "2", "1"]);

    // Roll back now: v1 for everyone, and the decision is listed.
    await page.click("#lc-rollback");
    await page.waitForSelector("#lc-confirm:not([hidden])", { timeout: 3000 });
    await page.click("#lc-confirm-yes");
    await statusMatches(page, /trajectory: version 1 for everyone/);
    const after = await routing(url);
    assert.deepEqual([after.policy, after.version], ["fixed", "1"]);
    await page.waitForFunction(() => document.querySelectorAll("#lc-decisions li").length >= 3, null, { timeout: 5000 });
    assert.match(await page.textContent("#lc-decisions li:first-child"), /set: .*"fixed".*evidence/);

    // Unload and load another model through the repository.
    await page.selectOption("#lc-model", "trajectory_cv");
    await page.waitForFunction(() => /loaded v1/.test(document.getElementById("lc-state").textContent), null, { timeout: 5000 });
    await page.click("#lc-unload");
    await page.click("#lc-confirm-yes");
    await page.waitForFunction(() => document.getElementById("lc-state").textContent === "not loaded", null, { timeout: 8000 });
    assert.equal((await fetch(`${url}/v2/models/trajectory_cv/ready`)).status, 400);
    await page.click("#lc-load");
    await page.waitForFunction(() => /loaded v1/.test(document.getElementById("lc-state").textContent), null, { timeout: 8000 });
    assert.equal((await fetch(`${url}/v2/models/trajectory_cv/ready`)).status, 200);
    // A fault with its size and a delayed start (the scene is paused at 0 s).
    await page.selectOption("#fault-sensor", "gps");
    await page.selectOption("#fault-kind", "spike");
    await page.fill("#fault-duration", "5");
    await page.fill("#fault-magnitude", "3");
    await page.fill("#fault-delay", "5");
    await page.click("#inject-fault");
    await page.waitForFunction(
      () => /inject_fault: spike on gps from 5\.0 s to 10\.0 s, magnitude 3$/.test(document.getElementById("command-status").textContent),
      null,
      { timeout: 5000 },
    );

    // The one refusal asked for above is the only error the browser saw.
    assert.deepEqual(errors, ["console: Failed to load resource: the server responded with a status of 400 (Bad Request)"]);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("a training round started from the page shows its epochs and loss curves as they come, and the version it produced", async () => {
  // A copy of the repository (the round writes a version into it); rounds of 100 windows.
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), "waypoint-e2e-repo-"));
  fs.cpSync(fileURLToPath(new URL("../../models", import.meta.url)), repo, { recursive: true });
  const server = startServer(["--speed", "4", "--learn-min-windows", "100", "--no-auto-canary", "--model-repository", repo]);
  const url = await server.url;
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.goto(url + "/");
    await page.click("#lifecycle > summary");
    await page.waitForSelector("#lc-training:not([hidden])", { timeout: 15000 });
    const deadline = Date.now() + 60000;
    while ((await (await fetch(`${url}/api/v1/learning`)).json()).observed_windows < 100) {
      assert.ok(Date.now() < deadline, "100 windows observed within a minute");
      await new Promise((ok) => setTimeout(ok, 250));
    }
    await page.fill("#lc-epochs", "3");
    await page.click("#lc-train");
    await page.waitForFunction(() => /training round 1 started/.test(document.getElementById("lc-status").textContent), null, {
      timeout: 8000,
    });
    // Followed to its end: epochs, the latest loss and validation ADE, what it produced.
    await page.waitForFunction(
      () => /^round 1: (done · .*produced v4|no_improvement)/.test(document.getElementById("lc-round-text").textContent),
      null,
      { timeout: 120000 },
    );
    const text = await page.textContent("#lc-round-text");
    assert.match(text, /loss \d+\.\d{4} · val ADE \d+\.\d{3} m/);
    const progress = await page.$eval("#lc-round-progress", (p) => [p.value, p.max]);
    assert.deepEqual(progress, [3, 3]);
    const round = (await (await fetch(`${url}/api/v1/learning`)).json()).rounds[0];
    assert.ok(round.progress.length >= 1 && round.progress.length <= 3, JSON.stringify(round));
    assert.ok(text.includes(`val ADE ${round.progress.at(-1).val_ade_m.toFixed(3)} m`), `${text} / ${JSON.stringify(round.progress)}`);
    // The validation ADE curve is drawn in its colour.
    const drawn = await page.$eval("#lc-val-ade", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 0x06) + Math.abs(d[i + 1] - 0xd6) + Math.abs(d[i + 2] - 0xa0) < 30) n++;
      return n;
    });
    assert.ok(drawn >= 6, `curve pixels ${drawn}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(repo, { recursive: true, force: true });
  }
});
