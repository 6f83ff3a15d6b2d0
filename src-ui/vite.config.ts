import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The production build: index.html only. Test doubles (src/testing/) are never
// imported from here; the browser tests build them separately
// (browser-tests/mock.config.ts) and inject them before the app starts.
export default defineConfig({
  plugins: [react()],
  base: "./",
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/testing/setup.ts"],
    restoreMocks: true,
  },
});
