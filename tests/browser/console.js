#!/usr/bin/env node
// Drives the operator console (served by showmix at /console/) in headless Chromium through
// playwright-core, for tests/console.rs and benches/console.rs.
//
//   node tests/browser/console.js --plan JSON
//
// plan: {
//   "mode": "e2e" | "first-frame" | "open",
//   "base": "http://127.0.0.1:PORT",  the showmix server
//   "token": T, "wrongToken": W,       the API token, and one the server refuses
//   "room": ID,                        the room to open
//   "shots": DIR,                      screenshots of the main pages (e2e)
//   "preview": "whep" | "hls",         first-frame: the preview path to force
//   "runs": N,                         first-frame: page loads to time
//   "pages": N, "seconds": S,          open: N console tabs for S seconds, on the room page
//   "page": "room" | "list",           (its preview forced with "preview" if given) or the list
//   "deadline": 90                     hard limit for the whole run, seconds
// }
// e2e: logs in with the wrong token (the error), then the right one; waits for the room in
// the list; opens it; reads the preview's frames (probes left and right) before and after
// switching pk -> single and back; resizes and drags tile 1 in the editor; moves the host's
// smoothness slider with the keyboard; sends a bad push URL. What it saw is in the result; the
// Rust test checks it against the API and the room's snapshots.
// Output: progress on stderr, then one line on stdout:
//   RESULT {"ok": ..., "error": ..., ...}
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.error("[console.js]", ...m);

function parseArgs(argv) {
  let plan = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--plan" && i + 1 < argv.length) plan = JSON.parse(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!plan || !plan.base) throw new Error("--plan with a base is required");
  return Object.assign({ mode: "e2e", deadline: 90, runs: 5, pages: 10, seconds: 20 }, plan);
}

// Mean colour of regions of the preview's current frame (fractions of the frame).
async function probe(page, regions) {
  return page.evaluate((regions) => {
    const v = document.getElementById("preview");
    if (!v || !v.videoWidth) return null;
    const c = document.createElement("canvas");
    c.width = 320;
    c.height = Math.round((320 * v.videoHeight) / v.videoWidth);
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(v, 0, 0, c.width, c.height);
    const out = {};
    for (const [name, r] of Object.entries(regions)) {
      const d = g.getImageData(Math.round(r.x * c.width), Math.round(r.y * c.height),
        Math.max(1, Math.round(r.w * c.width)), Math.max(1, Math.round(r.h * c.height))).data;
      let s = [0, 0, 0];
      for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
      const n = d.length / 4;
      out[name] = { r: s[0] / n, g: s[1] / n, b: s[2] / n };
    }
    return out;
  }, regions);
}

const RIGHT = { right: { x: 0.6, y: 0.2, w: 0.3, h: 0.4 }, left: { x: 0.1, y: 0.2, w: 0.3, h: 0.4 } };
const red = (p) => p && p.r > 140 && p.g < 100 && p.b < 100;

// Polls `f` every 200 ms until it returns a truthy value or `ms` pass.
async function until(f, ms, what) {
  const by = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > by) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

async function drag(page, from, dx, dy) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(from.x + (dx * i) / 10, from.y + (dy * i) / 10);
  await page.mouse.up();
}

async function centre(page, selector) {
  const b = await page.locator(selector).boundingBox();
  if (!b) throw new Error(`${selector} has no box`);
  return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
}

async function e2e(browser, plan, result) {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await ctx.newPage();
  watch(page, result);
  const shot = (name) => plan.shots && page.screenshot({ path: path.join(plan.shots, name) });
  await page.goto(`${plan.base}/console/`);

  // A wrong token: the login error, in the API's words.
  await page.fill("#token", plan.wrongToken);
  await page.click("button[type=submit]");
  result.loginError = await page.locator("#login-error").textContent({ timeout: 10000 });
  await shot("login-error.png");

  await page.fill("#token", plan.token);
  await page.click("button[type=submit]");
  const row = page.locator(`tr[data-room="${plan.room}"]`);
  await row.waitFor({ timeout: 15000 });
  await until(async () => (await row.locator(".cpu").textContent()).includes("%"), 10000, "CPU in the list");
  result.roomRow = await row.innerText();
  result.tokenInUrl = page.url().includes(plan.token);
  await shot("rooms.png");

  // A second tab of the same browser, logged in too, shares the first tab's event stream.
  const second = await ctx.newPage();
  watch(second, result);
  await second.addInitScript((t) => sessionStorage.setItem("showmix.token", t), plan.token);
  await second.goto(`${plan.base}/console/`);
  const row2 = second.locator(`tr[data-room="${plan.room}"]`);
  await row2.waitFor({ timeout: 15000 });
  await sleep(1500);
  result.secondTabRow = await row2.innerText();
  result.streamsWithTwoTabs = await page.evaluate(async () => {
    const m = await (await fetch("/metrics")).text();
    return Number((/^showmix_event_streams (\d+)$/m.exec(m) || [])[1]);
  });
  await second.close();

  // Opened straight on the room page (a reload, a shared link): the preview uses the WebRTC
  // offer the console started before the page was up.
  const direct = await ctx.newPage();
  watch(direct, result);
  await direct.addInitScript((t) => sessionStorage.setItem("showmix.token", t), plan.token);
  await direct.goto(`${plan.base}/console/rooms/${plan.room}`);
  await direct.locator("#preview[data-first-frame]").waitFor({ state: "attached", timeout: 20000 });
  result.direct = await direct.evaluate(() => {
    const v = document.getElementById("preview");
    return { mode: v.dataset.mode, timeline: JSON.parse(v.dataset.timeline || "{}") };
  });
  log("direct", JSON.stringify(result.direct));
  await direct.close();

  await row.locator("a").click();
  await page.locator("#preview[data-first-frame]").waitFor({ state: "attached", timeout: 20000 });
  result.preview = await page.evaluate(() => {
    const v = document.getElementById("preview");
    return { mode: v.dataset.mode, firstFrame: Number(v.dataset.firstFrame) };
  });
  log("preview", JSON.stringify(result.preview));
  result.before = await until(async () => {
    const p = await probe(page, RIGHT);
    return red(p && p.right) ? p : null;
  }, 10000, "the rival's red on the right of the preview");
  await sleep(1500); // a chart with a few points
  await shot("room.png");

  // pk -> single: the preview's right half turns from the rival's red to the host.
  const t0 = Date.now();
  await page.selectOption("#layout-pick", "single");
  result.single = await until(async () => {
    const p = await probe(page, RIGHT);
    return p && !red(p.right) ? p : null;
  }, 10000, "the preview to lose the rival after pk -> single");
  result.singleMs = Date.now() - t0;
  result.singleLayoutError = await page.locator("#layout-error").count();
  await page.selectOption("#layout-pick", "pk");
  result.backToPk = await until(async () => {
    const p = await probe(page, RIGHT);
    return red(p && p.right) ? p : null;
  }, 10000, "the rival back after single -> pk");

  // The editor: tile 1 shrunk to a quarter by its handle, then dragged right and down.
  await page.click("text=Edit tiles");
  const box = await page.locator(".preview").boundingBox();
  await page.locator('.tiles.editing [data-handle="1"]').waitFor({ timeout: 5000 });
  const h = await centre(page, '.tiles.editing [data-handle="1"]');
  await drag(page, h, -0.25 * box.width, -0.5 * box.height);
  // The layout comes back through the event stream and the editor redraws with it.
  await until(async () => (await page.locator('.tiles.editing [data-slot="1"] .tile-label').textContent()).includes("25×50"),
    10000, "tile 1 resized");
  await sleep(1200);
  const c = await centre(page, '.tiles.editing [data-slot="1"]');
  await drag(page, c, 0.1 * box.width, 0.3 * box.height);
  await until(async () => (await page.locator('.tiles.editing [data-slot="1"] .tile-label').textContent()).includes("60,30"),
    10000, "tile 1 moved");
  await sleep(1500);
  result.editorLabel = await page.locator('.tiles.editing [data-slot="1"] .tile-label').textContent();
  result.editorError = (await page.locator("#layout-error").count()) ? await page.locator("#layout-error").textContent() : null;
  await shot("editor.png");
  await page.click("text=Done editing");

  // Beauty: the host's smoothness slider, six keyboard steps of 0.05.
  const slider = page.locator("#beauty-host-smoothness");
  await slider.focus();
  result.smoothnessBefore = Number(await slider.inputValue());
  for (let i = 0; i < 6; i++) await page.keyboard.press("ArrowRight");
  await sleep(2500);
  result.smoothnessShown = Number(await slider.inputValue());

  // An API error next to the control that caused it.
  await page.selectOption(".add-output select", "rtmp");
  await page.fill('.add-output input[placeholder="cdn-a"]', "bad-push");
  await page.fill(".add-output input[required]", plan.badPushUrl);
  await page.click("text=Add output");
  result.outputError = await page.locator("#add-output-error").textContent({ timeout: 10000 });
  result.outputErrorInForm = await page.locator(".add-output #add-output-error").count();
  await page.locator(".outputs").screenshot(plan.shots ? { path: path.join(plan.shots, "outputs.png") } : {});
  await page.close();
}

function watch(page, result) {
  page.on("console", (m) => {
    if (m.type() === "error" && result.consoleErrors.length < 20) result.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => { if (result.consoleErrors.length < 20) result.consoleErrors.push(String(e)); });
}

// Page load to the first presented preview frame, `runs` times, with the token already in the
// tab's session storage (as after a login).
async function firstFrame(browser, plan, result) {
  result.runs = [];
  for (let i = 0; i < plan.runs; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    await ctx.addInitScript((t) => sessionStorage.setItem("showmix.token", t), plan.token);
    const page = await ctx.newPage();
    watch(page, result);
    await page.goto(`${plan.base}/console/rooms/${plan.room}?preview=${plan.preview}`);
    try {
      await page.locator("#preview[data-first-frame]").waitFor({ state: "attached", timeout: 15000 });
    } catch (e) {
      const timeline = await page.evaluate(() => document.getElementById("preview")?.dataset.timeline);
      result.runs.push({ error: "no frame within 15 s", timeline: JSON.parse(timeline || "{}") });
      log(`run ${i}: no frame`, timeline);
      await ctx.close();
      continue;
    }
    const r = await page.evaluate(() => {
      const v = document.getElementById("preview");
      const nav = performance.getEntriesByType("navigation")[0];
      return { mode: v.dataset.mode, firstFrame: Number(v.dataset.firstFrame),
               timeline: JSON.parse(v.dataset.timeline || "{}"),
               domContentLoaded: nav ? Math.round(nav.domContentLoadedEventEnd) : null };
    });
    log(`run ${i}`, JSON.stringify(r));
    result.runs.push(r);
    await ctx.close();
    await sleep(500);
  }
}

// `pages` consoles open for `seconds`, each in its own browser context (as `pages` operators
// would have them: one browser holds at most six HTTP/1.1 connections to a host).
async function open(browser, plan, result) {
  const pages = [];
  const contexts = [];
  for (let i = 0; i < plan.pages; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    await ctx.addInitScript((t) => sessionStorage.setItem("showmix.token", t), plan.token);
    contexts.push(ctx);
    const page = await ctx.newPage();
    watch(page, result);
    if (plan.page === "list") await page.goto(`${plan.base}/console/`);
    else await page.goto(`${plan.base}/console/rooms/${plan.room}${plan.preview ? `?preview=${plan.preview}` : ""}`);
    pages.push(page);
  }
  for (const p of pages) {
    if (plan.page === "list") await p.locator(`tr[data-room="${plan.room}"]`).waitFor({ timeout: 30000 });
    else await p.locator("#preview[data-first-frame]").waitFor({ state: "attached", timeout: 30000 });
  }
  result.openedAt = Date.now();
  log(`${pages.length} consoles open`);
  await sleep(plan.seconds * 1000);
  result.closedAt = Date.now();
  result.modes = await Promise.all(pages.map((p) => p.evaluate(() => {
    const v = document.getElementById("preview");
    return v ? v.dataset.mode : "list";
  })));
  for (const c of contexts) await c.close();
}

async function main() {
  const plan = parseArgs(process.argv.slice(2));
  const result = { ok: false, error: null, consoleErrors: [] };
  let browser = null, finished = false;
  const finish = async (code) => {
    if (finished) return;
    finished = true;
    try { if (browser) await Promise.race([browser.close(), sleep(5000)]); } catch (_) { /* gone */ }
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
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: [
        "--no-sandbox",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        // Background tabs (the bench's ten consoles) keep decoding like visible ones.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
      ],
    });
    if (plan.mode === "e2e") await e2e(browser, plan, result);
    else if (plan.mode === "first-frame") await firstFrame(browser, plan, result);
    else if (plan.mode === "open") await open(browser, plan, result);
    else throw new Error(`unknown mode ${plan.mode}`);
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
