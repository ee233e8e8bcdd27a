// The cluster's state on the page, against two real replicas sharing Debian's redis-server: the
// header names the replica, the leader, Redis and the replicas seen, and warns when Redis goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { launchBrowser, startServer, watchErrors } from "./harness.mjs";

const freePort = () =>
  new Promise((ok) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function startRedis(port) {
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    const up = await new Promise((ok) => {
      const c = net.connect(port, "127.0.0.1", () => (c.destroy(), ok(true)));
      c.on("error", () => ok(false));
    });
    if (up) return proc;
    if (Date.now() > deadline) throw new Error("redis-server did not start (scripts/test-all installs it)");
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

test("the header shows the cluster's state and warns when Redis goes", async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}`;
  const a = startServer(["--paused", "--redis", url, "--replica-id", "e2e-a"]);
  const b = startServer(["--paused", "--redis", url, "--replica-id", "e2e-b"]);
  const browser = await launchBrowser();
  try {
    const [, bUrl] = [await a.url, await b.url];
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.goto(bUrl + "/");
    await page.waitForFunction(
      () => /^replica e2e-b · leader: (this replica|e2e-a) · Redis up · 2 replicas seen$/.test(document.getElementById("cluster").textContent),
      null,
      { timeout: 20000 },
    );
    assert.equal(await page.isVisible("#cluster"), true);
    assert.equal(await page.getAttribute("#cluster", "class"), "note");
    redis.kill("SIGTERM");
    await page.waitForFunction(() => /Redis down .*the scene may be unavailable$/.test(document.getElementById("cluster").textContent), null, {
      timeout: 20000,
    });
    assert.equal(await page.getAttribute("#cluster", "class"), "note warn");
    // What the browser saw is only what a lost cluster explains (none of the page's own errors).
    assert.deepEqual(errors.filter((e) => !/status of 503/.test(e)), []);
  } finally {
    await browser.close();
    redis.kill("SIGKILL");
    await a.stop();
    await b.stop();
  }
});
