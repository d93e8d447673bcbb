// The wall-clock stamp showmix's latency benchmarks burn into pictures and read back from
// presented frames: 24 bits of (Date.now() mod 2^24) and a 4-bit check (sum of the six
// nibbles mod 16, XOR 0b1010, so a flat black or white picture never reads as a stamp), as 28 black/white blocks in a row across a region of the frame (fractions
// 0..1). A reader that lands between blocks, or on a frame the encoder mangled, fails the
// check and reads nothing. tests/support/stamp.rs is the same in Rust (publishers made with
// GStreamer, probes inside the server).
"use strict";
(function (root) {
  const STAMP_BITS = 28;
  function stampBits(ms) {
    const v = ms % 2 ** 24;
    let check = 0;
    for (let i = 0; i < 6; i++) check += (v >> (4 * i)) & 15;
    const bits = [];
    for (let b = 0; b < 24; b++) bits.push((v >> b) & 1);
    check = (check & 15) ^ 10;
    for (let b = 0; b < 4; b++) bits.push((check >> b) & 1);
    return bits;
  }
  function decodeBits(bits) {
    let v = 0;
    for (let b = 0; b < 24; b++) v += bits[b] * 2 ** b;
    let check = 0;
    for (let b = 0; b < 4; b++) check += bits[24 + b] * 2 ** b;
    let sum = 0;
    for (let i = 0; i < 6; i++) sum += Math.floor(v / 2 ** (4 * i)) & 15;
    return ((sum & 15) ^ 10) === check ? v : null;
  }
  function drawStamp(ctx, w, h, region, ms) {
    const bits = stampBits(ms);
    const x0 = region.x * w, y0 = region.y * h, bw = (region.w * w) / STAMP_BITS, bh = region.h * h;
    for (let b = 0; b < STAMP_BITS; b++) {
      ctx.fillStyle = bits[b] ? "#fff" : "#000";
      ctx.fillRect(Math.round(x0 + b * bw), Math.round(y0), Math.ceil(bw), Math.round(bh));
    }
  }
  // px: RGBA of a w x h image.
  function readStamp(px, w, h, region) {
    const bits = [];
    const bw = (region.w * w) / STAMP_BITS;
    const y = Math.floor((region.y + region.h / 2) * h);
    for (let b = 0; b < STAMP_BITS; b++) {
      const x = Math.floor(region.x * w + (b + 0.5) * bw);
      const i = (y * w + x) * 4;
      const luma = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      bits.push(luma > 128 ? 1 : 0);
    }
    return decodeBits(bits);
  }
  // Latency in ms of a stamp read at wall-clock `now` (both mod 2^24).
  function stampLatency(stamp, now) {
    let d = (now % 2 ** 24) - stamp;
    if (d < -(2 ** 23)) d += 2 ** 24;
    if (d > 2 ** 23) d -= 2 ** 24;
    return d;
  }
  root.Stamp = { STAMP_BITS, stampBits, decodeBits, drawStamp, readStamp, stampLatency };
})(typeof window !== "undefined" ? window : globalThis);
