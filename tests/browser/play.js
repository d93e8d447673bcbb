#!/usr/bin/env node
// Plays one HLS stream with hls.js in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core: no browser download) and reports what the player saw, for
// tests/hls_browser.rs and benches/hls.rs.
//
//   node tests/browser/play.js --src URL [--serve DIR] [--warmup S] [--seconds S]
//        [--switch] [--clock] [--sample-ms MS] [--deadline S] [--config JSON]
//
// --src       the playlist; a path (/ref/index.m3u8) is taken relative to the page's server
// --serve     also serve DIR under /ref/ (for a reference stream written by ffmpeg)
// --warmup    seconds to play after playback starts before sampling (default 2)
// --seconds   seconds of sampling (default 6)
// --switch    a third into the sampling, switch rungs (hls.currentLevel) and wait for it
// --clock     also read the wall-clock stamp burnt into the picture (see player.html)
// --deadline  hard limit for the whole run (default 60 s): the browser is closed and the
//             process exits 2 past it
// --config    extra hls.js configuration (JSON) over {lowLatencyMode: true}
// --stamp     a region {"x","y","w","h"} (fractions of the frame) holding a stamp.js stamp:
//             the latency of every presented frame is reported in "stamps"
//
// The page and hls.js come from a static server on 127.0.0.1 (ephemeral port); the browser
// talks to loopback only. Output: progress on stderr, then one line on stdout:
//   RESULT {"ok": true|false, "error": ..., "levels": [...], "samples": [...], ...}
"use strict";

const http = require("http");
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const a = { warmup: 2, seconds: 6, sampleMs: 250, deadline: 60, switch: false, clock: false,
              serve: null, src: null, config: {}, stamp: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case "--src": a.src = next(); break;
      case "--serve": a.serve = path.resolve(next()); break;
      case "--warmup": a.warmup = Number(next()); break;
      case "--seconds": a.seconds = Number(next()); break;
      case "--sample-ms": a.sampleMs = Number(next()); break;
      case "--deadline": a.deadline = Number(next()); break;
      case "--config": a.config = JSON.parse(next()); break;
      case "--stamp": a.stamp = JSON.parse(next()); break;
      case "--switch": a.switch = true; break;
      case "--clock": a.clock = true; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.src) throw new Error("--src is required");
  for (const k of ["warmup", "seconds", "sampleMs", "deadline"]) {
    if (!Number.isFinite(a[k]) || a[k] < 0) throw new Error(`bad --${k}`);
  }
  return a;
}

const TYPES = { ".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4",
                ".m4s": "video/iso.segment", ".ts": "video/mp2t", ".html": "text/html",
                ".js": "text/javascript" };

// The page, hls.js, and (with --serve) a directory under /ref/. Nothing else.
function startServer(serveDir) {
  const here = __dirname;
  const fixed = {
    "/": path.join(here, "player.html"),
    "/hls.js": path.join(here, "node_modules", "hls.js", "dist", "hls.min.js"),
    "/stamp.js": path.join(here, "stamp.js"),
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    let file = fixed[url.pathname];
    if (!file && serveDir && url.pathname.startsWith("/ref/")) {
      const name = decodeURIComponent(url.pathname.slice("/ref/".length));
      if (/^[A-Za-z0-9_.-]+$/.test(name) && !name.startsWith(".")) file = path.join(serveDir, name);
    }
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream",
                           "cache-control": "no-cache", "access-control-allow-origin": "*" });
      res.end(data);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.error("[play.js]", ...m);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const result = { ok: false, error: null, levels: null, samples: [], stamps: [], switch: null,
                   startupMs: null, errors: [], errorCount: 0, fatal: null, waiting: 0,
                   consoleErrors: [] };
  let browser = null;
  let server = null;
  let finished = false;
  const finish = async (code) => {
    if (finished) return;
    finished = true;
    try { if (browser) await Promise.race([browser.close(), sleep(5000)]); } catch (_) { /* gone */ }
    try { if (server) server.close(); } catch (_) { /* gone */ }
    process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(code));
  };
  const deadline = setTimeout(() => {
    result.error = result.error || `deadline of ${args.deadline} s reached`;
    finish(2);
  }, args.deadline * 1000);
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      result.error = result.error || `stopped by ${sig}`;
      finish(3);
    });
  }
  try {
    server = await startServer(args.serve);
    const base = `http://127.0.0.1:${server.address().port}`;
    const src = args.src.startsWith("/") ? base + args.src : args.src;
    const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [
        "--no-sandbox", // runs as root in CI
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        // Loopback only: no name resolution beyond it, no background traffic.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const page = await browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error" && result.consoleErrors.length < 20) result.consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => {
      if (result.consoleErrors.length < 20) result.consoleErrors.push(String(e));
    });
    await page.goto(base + "/");
    await page.evaluate(([s, c, r]) => window.startPlayer(s, c, r), [src, args.config, args.stamp]);
    log("playing", src);

    // Playback starts: 'playing' and the playhead moving.
    const startBy = Date.now() + 20000;
    for (;;) {
      const st = await page.evaluate(() => window.playerState());
      const s = await page.evaluate(() => window.sample(false));
      if (st.fatal) throw new Error(`hls.js fatal error before playback: ${st.fatal}`);
      if (st.playingAt !== null && s.currentTime > 0 && !s.paused) {
        result.startupMs = st.playingAt;
        break;
      }
      if (Date.now() > startBy) {
        throw new Error(`no playback within 20 s: ${JSON.stringify({ st, s })}`);
      }
      await sleep(100);
    }
    log(`started after ${Math.round(result.startupMs)} ms; warming up ${args.warmup} s`);
    await sleep(args.warmup * 1000);

    await page.evaluate(() => window.takeStamps());
    const end = Date.now() + args.seconds * 1000;
    const switchAt = args.switch ? Date.now() + (args.seconds * 1000) / 3 : Infinity;
    while (Date.now() < end) {
      const t = Date.now();
      result.samples.push(await page.evaluate((c) => window.sample(c), args.clock));
      if (args.stamp) result.stamps.push(...(await page.evaluate(() => window.takeStamps())));
      if (t >= switchAt && !result.switch) {
        result.switch = await page.evaluate(() => window.switchLevel());
        log(`switching level ${result.switch.from} -> ${result.switch.to}`);
      }
      await sleep(Math.max(0, args.sampleMs - (Date.now() - t)));
    }
    if (result.switch) {
      // Wait (bounded) for the switch to land if it has not yet.
      const by = Date.now() + 15000;
      for (;;) {
        const st = await page.evaluate(() => window.playerState());
        const cur = await page.evaluate(() => window.hls.currentLevel);
        const landed = st.switched.find((e) => e.level === result.switch.to && e.ms >= result.switch.ms);
        if (landed && cur === result.switch.to) {
          result.switch.switchedMs = landed.ms;
          result.switch.currentLevelAfter = cur;
          break;
        }
        if (Date.now() > by) {
          result.switch.currentLevelAfter = cur;
          break;
        }
        await sleep(100);
      }
      // Playback goes on after the switch.
      await sleep(1500);
      result.samples.push(await page.evaluate((c) => window.sample(c), args.clock));
    }
    const st = await page.evaluate(() => window.playerState());
    Object.assign(result, { levels: st.levels, errors: st.errors, errorCount: st.errorCount,
                            fatal: st.fatal, waiting: st.waiting, switched: st.switched,
                            playError: st.playError });
    result.ok = true;
    clearTimeout(deadline);
    await finish(0);
  } catch (e) {
    result.error = String(e && e.stack ? e.stack : e);
    clearTimeout(deadline);
    await finish(1);
  }
}

main().catch((e) => {
  console.log("RESULT " + JSON.stringify({ ok: false, error: String(e) }));
  process.exit(1);
});
