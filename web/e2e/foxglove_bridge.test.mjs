// The Foxglove bridge (`serve --foxglove-addr`) against Foxglove's own npm client
// (@foxglove/ws-protocol): it connects with the protocol's subprotocol, sees the channels
// advertised, subscribes, and decodes a point cloud and a scene update with protobufjs from the
// schemas the server advertised (FileDescriptorSets), and a JSON health message.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { resolve } from "node:path";
import wsProtocol from "@foxglove/ws-protocol";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import WebSocket from "ws";
import { waypointBinary } from "./harness.mjs";

const { FoxgloveClient } = wsProtocol;
// The SDK's server (foxglove 0.30) names the protocol `foxglove.sdk.v1`; the messages are those of
// the published `foxglove.websocket.v1` that @foxglove/ws-protocol implements.
const SUBPROTOCOL = "foxglove.sdk.v1";
const MODELS = resolve(import.meta.dirname, "../../models");

function startBridge() {
  const proc = spawn(
    waypointBinary(),
    ["serve", "--addr", "127.0.0.1:0", "--foxglove-addr", "127.0.0.1:0", "--model-repository", MODELS],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, WAYPOINT_LOG_FORMAT: "text", NO_COLOR: "1" } },
  );
  let log = "";
  const url = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("no bridge:\n" + log)), 30000);
    proc.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/open (ws:\/\/[\d.]+:\d+) in the Foxglove app/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    proc.on("exit", (code) => fail(new Error(`server exited with ${code}:\n${log}`)));
  });
  return { proc, url };
}

function decoderFor(channel) {
  if (channel.encoding === "json") return (bytes) => JSON.parse(new TextDecoder().decode(bytes));
  assert.equal(channel.encoding, "protobuf");
  assert.equal(channel.schemaEncoding, "protobuf");
  const set = descriptor.FileDescriptorSet.decode(Buffer.from(channel.schema, "base64"));
  const type = protobuf.Root.fromDescriptor(set).lookupType(channel.schemaName);
  return (bytes) => type.toObject(type.decode(bytes), { longs: Number });
}

test("the Foxglove bridge advertises the live channels and streams decodable messages", async () => {
  const { proc, url } = startBridge();
  try {
    const address = await url;
    const client = new FoxgloveClient({ ws: new WebSocket(address, [SUBPROTOCOL]) });
    const wanted = ["/lidar", "/scene/entities", "/waypoint/health"];
    const got = new Map();
    const done = new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error("missing: " + wanted.filter((t) => !got.has(t)))), 30000);
      const subs = new Map();
      let serverName = null;
      client.on("serverInfo", (info) => (serverName = info.name));
      client.on("error", (e) => fail(e));
      client.on("advertise", (channels) => {
        for (const ch of channels) {
          if (!wanted.includes(ch.topic) || [...subs.values()].some((s) => s.channel.topic === ch.topic)) continue;
          subs.set(client.subscribe(ch.id), { channel: ch, decode: decoderFor(ch) });
        }
      });
      client.on("message", ({ subscriptionId, data }) => {
        const sub = subs.get(subscriptionId);
        if (!sub || got.has(sub.channel.topic)) return;
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        got.set(sub.channel.topic, { channel: sub.channel, message: sub.decode(bytes) });
        if (wanted.every((t) => got.has(t))) {
          clearTimeout(timer);
          ok(serverName);
        }
      });
    });
    assert.equal(await done, "waypoint");
    client.close();

    const cloud = got.get("/lidar");
    assert.equal(cloud.channel.schemaName, "foxglove.PointCloud");
    assert.equal(cloud.message.frameId, "world");
    assert.equal(cloud.message.pointStride, 16);
    assert.deepEqual(cloud.message.fields.map((f) => f.name), ["x", "y", "z", "intensity"]);
    const d = cloud.message.data;
    const raw = typeof d === "string" ? Buffer.from(d, "base64") : Buffer.from(d);
    assert.ok(raw.length > 16 * 1000, `points: ${raw.length / 16}`);
    // Points are finite numbers within the sensor's range.
    const x = raw.readFloatLE(0);
    assert.ok(Number.isFinite(x) && Math.abs(x) < 200, `first x ${x}`);

    const scene = got.get("/scene/entities");
    assert.equal(scene.channel.schemaName, "foxglove.SceneUpdate");
    assert.ok(scene.message.entities.length > 5);
    const ego = scene.message.entities.find((e) => e.id === "ego");
    assert.ok(ego && ego.cubes.length === 1 && ego.frameId === "world");

    const health = got.get("/waypoint/health");
    assert.equal(health.channel.schemaName, "waypoint.Health");
    assert.ok(Array.isArray(health.message.sensors) && health.message.sensors.length === 5);
  } finally {
    proc.kill("SIGTERM");
  }
});
