// Entry point: starts the worker (which opens the WebSocket) before anything else loads, keeps
// what it says until the page's code is ready, then loads the page.

import "./style.css";
import { takeToken } from "./auth";
import type { FromWorker, ToWorker } from "./protocol";

const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const early: FromWorker[] = [];
worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  early.push(ev.data);
  if (early.length > 64) early.shift();
};
const token = takeToken();
const start: ToWorker = {
  kind: "start",
  // A browser cannot set headers on a WebSocket: the token goes in the query.
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`,
  base: location.origin,
};
worker.postMessage(start);
(window as unknown as { __boot: unknown }).__boot = { worker, early };
void import("./app");
