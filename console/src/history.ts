// Each room's chart points, kept from the event stream's history and every snapshot after it.

import type { Point, Snapshot } from "./types";

export type History = Record<string, Point[]>;

/** `h` with one point per room of `s` appended (rooms gone are dropped, five minutes kept). */
export function appendSnapshot(h: History, s: Snapshot): History {
  const next: History = {};
  for (const r of s.rooms) {
    const p: Point = {
      t: s.time,
      kbps: r.stats.rungs.reduce((a, b) => a + b.bitrate_kbps, 0),
      fps: r.stats.mix_fps,
      cpu: r.stats.cpu_percent,
    };
    const old = h[r.id] ?? [];
    const last = old[old.length - 1];
    next[r.id] = last && last.t >= p.t ? old : [...old, p].slice(-300);
  }
  return next;
}
