// Builds the fake control plane (src/testing/) as one classic script for the
// browser tests. It is not part of dist/: the app never imports it.
import { defineConfig } from "vite";

export default defineConfig({
  logLevel: "warn",
  build: {
    lib: {
      entry: "src/testing/browser-mock.ts",
      formats: ["iife"],
      name: "SamMock",
      fileName: () => "mock.js",
    },
    outDir: "browser-tests/.build",
    emptyOutDir: true,
    minify: false,
    target: "es2022",
  },
});
