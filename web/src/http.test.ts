import { afterEach, describe, expect, it, vi } from "vitest";
import { getJson } from "./http";

afterEach(() => vi.unstubAllGlobals());

describe("getJson", () => {
  it("gives the JSON, or null for an error status, and never throws", async () => {
    vi.stubGlobal("fetch", async (url: string) =>
      url.endsWith("/ok") ? new Response('{"a":1}') : url.endsWith("/bad") ? new Response("no", { status: 500 }) : Promise.reject(new Error("down")),
    );
    expect(await getJson("http://x", "/ok")).toEqual({ a: 1 });
    expect(await getJson("http://x", "/bad")).toBeNull();
    expect(await getJson("http://x", "/gone")).toBeNull();
  });

  it("gives up on a request that never answers", async () => {
    // A server that holds the request open until the caller aborts it.
    vi.stubGlobal(
      "fetch",
      (_url: string, init: RequestInit) =>
        new Promise((_, fail) => init.signal?.addEventListener("abort", () => fail(init.signal?.reason))),
    );
    // Without the timeout this would never settle and the test would time out.
    expect(await getJson("http://x", "/stuck", 50)).toBeNull();
  });
});
