import { defineConfig } from "vitest/config";

// The production build lands in `dist/`, which the server embeds (crates/waypoint-server/build.rs).
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    modulePreload: { polyfill: false },
  },
  worker: { format: "es" },
  server: {
    proxy: {
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
      "/api": "http://127.0.0.1:8080",
      "/v2": "http://127.0.0.1:8080",
      "/lcjs": "http://127.0.0.1:8080",
    },
  },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
