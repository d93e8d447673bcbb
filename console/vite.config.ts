// Builds the console into dist/, which engine/build.rs embeds into the showmix binary.
// Served at /console/; hashed file names under assets/ (cached for a year by the server).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // The server's CSP allows no inline scripts or styles: everything in files.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    sourcemap: false,
    // hls.js (the LL-HLS fallback) is one lazily loaded chunk of about 580 kB.
    chunkSizeWarningLimit: 700,
  },
});
