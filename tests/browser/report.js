#!/usr/bin/env node
// Opens an encode-test report (report.html, from file://, offline) in headless Chromium
// (Debian's /usr/bin/chromium through playwright-core) and reports whether its charts loaded,
// with a full-page screenshot, for tests/encode_test.rs.
//
//   node tests/browser/report.js --page DIR/report.html --shot OUT.png [--deadline S]
//
// Output: progress on stderr, then one line on stdout:
//   RESULT {"ok": true|false, "error": ..., "images": [{"src", "w", "h", "complete"}], ...}
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const a = { page: null, shot: null, deadline: 60 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case "--page": a.page = path.resolve(next()); break;
      case "--shot": a.shot = path.resolve(next()); break;
      case "--deadline": a.deadline = Number(next()); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.page || !a.shot) throw new Error("--page and --shot are required");
  return a;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const result = { ok: false, error: null, images: [], title: null, consoleErrors: [] };
  let browser = null;
  const timer = setTimeout(() => {
    result.error = `deadline of ${args.deadline} s reached`;
    console.log("RESULT " + JSON.stringify(result));
    process.exit(2);
  }, args.deadline * 1000);
  process.on("SIGTERM", async () => {
    if (browser) await browser.close().catch(() => {});
    process.exit(3);
  });
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // Offline: the report must not need the network.
      args: ["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on("pageerror", (e) => result.consoleErrors.push(String(e)));
    await page.goto("file://" + args.page, { waitUntil: "load" });
    result.title = await page.title();
    result.images = await page.evaluate(() =>
      Array.from(document.querySelectorAll("img.chart")).map((i) => ({
        src: i.getAttribute("src"), w: i.naturalWidth, h: i.naturalHeight, complete: i.complete,
      })));
    await page.screenshot({ path: args.shot, fullPage: true });
    console.error("screenshot", args.shot);
    result.ok = true;
  } catch (e) {
    result.error = String(e && e.stack || e);
  } finally {
    if (browser) await browser.close().catch(() => {});
    clearTimeout(timer);
  }
  console.log("RESULT " + JSON.stringify(result));
}

main();
