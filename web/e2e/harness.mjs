// Shared helpers for the browser tests: start the real `waypoint` binary on a free port and a
// headless Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");

export function waypointBinary() {
  if (process.env.WAYPOINT_BIN) return process.env.WAYPOINT_BIN;
  // The most recently built of the release and debug binaries.
  const built = ["target/release/waypoint", "target/debug/waypoint"]
    .map((p) => join(ROOT, p))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (built.length === 0) throw new Error("no waypoint binary: run `cargo build` first or set WAYPOINT_BIN");
  return built[0];
}

/** Starts `waypoint serve` on port 0 and resolves with its base URL once it listens. */
export function startServer(extraArgs = [], addr = "127.0.0.1:0") {
  const proc = spawn(waypointBinary(), ["serve", "--addr", addr, ...extraArgs], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, WAYPOINT_LOG_FORMAT: "text" },
  });
  let log = "";
  const url = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("server did not start:\n" + log)), 20000);
    proc.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/open (http:\/\/[\d.]+:\d+)\//);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    proc.on("exit", (code) => fail(new Error(`server exited with ${code}:\n${log}`)));
  });
  return {
    proc,
    url,
    log: () => log,
    stop: () =>
      new Promise((ok) => {
        if (proc.exitCode !== null) return ok();
        proc.on("exit", () => ok());
        proc.kill("SIGTERM");
      }),
  };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh persistent context in a temporary profile; `close()` removes the profile. `options`
 * (a viewport, a device pixel ratio) go to the context. */
export async function launchBrowser(options = {}) {
  const dir = mkdtempSync(join(tmpdir(), "waypoint-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    ...options,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Records page errors and console errors so a test can assert there were none. */
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push("pageerror: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push("console: " + m.text());
  });
  return errors;
}
