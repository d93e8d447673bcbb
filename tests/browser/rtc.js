#!/usr/bin/env node
// Runs WebRTC pages (rtc.html) in headless Chromium through playwright-core: WHIP publishers
// and WHEP viewers of a showmix server, for tests/webrtc_browser.rs and benches/webrtc.rs.
//
//   node tests/browser/rtc.js --plan JSON
//
// plan: {
//   "deadline": 60,                      hard limit for the whole run, seconds
//   "publishers": [{"whip": URL, "key": K, "source": "camera"|"stamp", "region": R, "codec": "H264"|"VP8"}],
//   "viewers": [{"whep": URL, "token": T, "stamp": R, "probes": [{"name": N, "x","y","w","h"}]}],
//   "warmup": 1,                         seconds after every viewer shows frames
//   "seconds": 6,                        seconds of sampling
//   "hangup": true,                      DELETE every session at the end
//   "hls": [{"src": URL, "stamp": R, "config": {...}, "seekToLive": bool}]   after the WHEP viewers have left, the
//                                        same room in hls.js (player.html), publishers still on
// }
// Regions (R, probes) are fractions 0..1 of the frame. Viewers start once every publisher is
// connected. Output: progress on stderr, then one line on stdout:
//   RESULT {"ok": ..., "error": ..., "publishers": [...], "viewers": [...]}
"use strict";

const http = require("http");
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.error("[rtc.js]", ...m);

function parseArgs(argv) {
  let plan = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--plan" && i + 1 < argv.length) plan = JSON.parse(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!plan) throw new Error("--plan is required");
  return Object.assign({ deadline: 60, publishers: [], viewers: [], warmup: 1, seconds: 6, hangup: true,
                         hls: [] }, plan);
}

// The page and the stamp code; everything else comes from the showmix server under test.
function startServer() {
  const files = { "/": ["rtc.html", "text/html"], "/stamp.js": ["stamp.js", "text/javascript"],
                  "/player.html": ["player.html", "text/html"],
                  "/hls.js": ["node_modules/hls.js/dist/hls.min.js", "text/javascript"] };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, "http://127.0.0.1").pathname];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(path.join(__dirname, f[0]), (err, data) => {
      if (err) { res.writeHead(500).end(); return; }
      res.writeHead(200, { "content-type": f[1], "cache-control": "no-cache" });
      res.end(data);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function main() {
  const plan = parseArgs(process.argv.slice(2));
  const result = { ok: false, error: null, publishers: [], viewers: [], hls: [], consoleErrors: [] };
  let browser = null, server = null, finished = false;
  const finish = async (code) => {
    if (finished) return;
    finished = true;
    try { if (browser) await Promise.race([browser.close(), sleep(5000)]); } catch (_) { /* gone */ }
    try { if (server) server.close(); } catch (_) { /* gone */ }
    process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(code));
  };
  const deadline = setTimeout(() => {
    result.error = result.error || `deadline of ${plan.deadline} s reached`;
    finish(2);
  }, plan.deadline * 1000);
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => { result.error = result.error || `stopped by ${sig}`; finish(3); });
  }
  try {
    server = await startServer();
    const base = `http://127.0.0.1:${server.address().port}/`;
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: [
        "--no-sandbox",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        // Real host candidates, not mDNS names nobody here resolves.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const open = async () => {
      const page = await browser.newPage();
      page.on("console", (m) => {
        if (m.type() === "error" && result.consoleErrors.length < 20) result.consoleErrors.push(m.text());
      });
      page.on("pageerror", (e) => { if (result.consoleErrors.length < 20) result.consoleErrors.push(String(e)); });
      await page.goto(base);
      return page;
    };
    const pubs = [];
    for (const p of plan.publishers) {
      const page = await open();
      const neg = await page.evaluate(([u, k, s, r, c]) => window.publish(u, k, s, r, c),
        [p.whip, p.key, p.source || "camera", p.region || { x: 0.3, y: 0.45, w: 0.4, h: 0.1 }, p.codec || null]);
      log("publisher", p.whip, "->", neg.status);
      pubs.push({ page, plan: p, neg });
    }
    // Publishers connected (or failed to negotiate: reported as they are).
    const connectBy = Date.now() + 15000;
    for (const p of pubs) {
      if (p.neg.status !== 201) continue;
      for (;;) {
        const st = await p.page.evaluate(() => window.rtcState());
        if (st.connectionState === "connected") break;
        if (Date.now() > connectBy || st.connectionState === "failed") {
          throw new Error(`publisher ${p.plan.whip} did not connect: ${JSON.stringify(st)}`);
        }
        await sleep(50);
      }
    }
    const views = [];
    for (const v of plan.viewers) {
      const page = await open();
      const neg = await page.evaluate(([u, t, s, pr]) => window.play(u, t, s, pr),
        [v.whep, v.token || null, v.stamp || null, v.probes || null]);
      log("viewer", v.whep, "->", neg.status);
      views.push({ page, plan: v, neg, frames: [] });
    }
    const frameBy = Date.now() + 20000;
    for (const v of views) {
      if (v.neg.status !== 201) continue;
      for (;;) {
        const st = await v.page.evaluate(() => window.rtcState());
        if (st.frameCount > 0) break;
        if (Date.now() > frameBy) throw new Error(`viewer ${v.plan.whep} shows no frame: ${JSON.stringify(st)}`);
        await sleep(50);
      }
    }
    await sleep(plan.warmup * 1000);
    for (const v of views) await v.page.evaluate(() => window.takeFrames());
    const end = Date.now() + plan.seconds * 1000;
    while (Date.now() < end) {
      await sleep(500);
      for (const v of views) v.frames.push(...(await v.page.evaluate(() => window.takeFrames())));
    }
    for (const p of pubs) {
      result.publishers.push({ negotiation: p.neg, state: await p.page.evaluate(() => window.rtcState()),
                               stats: await p.page.evaluate(() => window.rtpStats()) });
    }
    for (const v of views) {
      result.viewers.push({ negotiation: v.neg, state: await v.page.evaluate(() => window.rtcState()),
                            stats: await v.page.evaluate(() => window.rtpStats()), frames: v.frames });
    }
    if (plan.hangup) {
      for (const [i, v] of views.entries()) {
        result.viewers[i].deleteStatus = await v.page.evaluate(([u, t]) => window.hangUp(u, t), [v.plan.whep, v.plan.token || null]);
      }
    }
    for (const v of views) await v.page.close();
    // hls.js viewers of the same room, one at a time, the publishers still on air.
    for (const h of plan.hls) {
      const page = await browser.newPage();
      await page.goto(base + "player.html");
      await page.evaluate(([s, c, r, k]) => window.startPlayer(s, c, r, k),
                          [h.src, h.config || {}, h.stamp || null, !!h.seekToLive]);
      const by = Date.now() + 20000;
      for (;;) {
        const st = await page.evaluate(() => window.playerState());
        if (st.fatal) throw new Error(`hls.js: ${st.fatal}`);
        if (st.playingAt !== null) break;
        if (Date.now() > by) throw new Error("hls.js did not start within 20 s");
        await sleep(100);
      }
      await sleep((h.warmup === undefined ? 4 : h.warmup) * 1000);
      await page.evaluate(() => window.takeStamps());
      const stamps = [], samples = [];
      const end = Date.now() + (h.seconds || plan.seconds) * 1000;
      while (Date.now() < end) {
        await sleep(500);
        stamps.push(...(await page.evaluate(() => window.takeStamps())));
        samples.push(await page.evaluate(() => window.sample(false)));
      }
      const st = await page.evaluate(() => window.playerState());
      result.hls.push({ stamps, samples, startupMs: st.playingAt, errors: st.errorCount, fatal: st.fatal,
                       waiting: st.waiting, liveSeeks: st.liveSeeks });
      await page.close();
    }
    if (plan.hangup) {
      for (const [i, p] of pubs.entries()) {
        result.publishers[i].deleteStatus = await p.page.evaluate(([u, k]) => window.hangUp(u, k), [p.plan.whip, p.plan.key]);
      }
    }
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
