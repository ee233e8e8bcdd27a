// Entry point: starts the worker (which opens the WebSocket) before anything else loads, keeps
// what it says until the page's code is ready, then loads the page.

import "./style.css";
import type { FromWorker, ToWorker } from "./protocol";

const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const early: FromWorker[] = [];
worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  early.push(ev.data);
  if (early.length > 64) early.shift();
};
const start: ToWorker = {
  kind: "start",
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  base: location.origin,
};
worker.postMessage(start);
(window as unknown as { __boot: unknown }).__boot = { worker, early };
void import("./app");
