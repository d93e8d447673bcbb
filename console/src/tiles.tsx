// Seat tiles drawn over the preview: outlined and labelled, and, in the editor, dragged and
// resized (mouse or keyboard) into a custom layout sent with PUT /v1/rooms/{room}/layout.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Layout, Seat, Slot } from "./types";

function pct(v: number) {
  return `${(v * 100).toFixed(3)}%`;
}

function label(i: number, seats: Seat[]) {
  const s = seats.find((x) => x.slot === i);
  return s ? s.id : `slot ${i} (empty)`;
}

export function TileOutlines({ layout, seats }: { layout: Layout; seats: Seat[] }) {
  return (
    <div class="tiles" aria-hidden="true">
      {layout.slots.map((s, i) => (
        <div
          key={i}
          class="tile"
          data-slot={i}
          style={{ left: pct(s.x), top: pct(s.y), width: pct(s.w), height: pct(s.h), zIndex: String(s.z ?? 0) }}
        >
          <span class="tile-label">{label(i, seats)}</span>
        </div>
      ))}
    </div>
  );
}

const round = (v: number) => Math.round(v * 1000) / 1000;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const MIN = 0.05;

/** Moves or resizes slot `s` by (dx, dy) in canvas fractions, staying on the canvas. */
export function moved(s: Slot, dx: number, dy: number, resize: boolean): Slot {
  if (resize) {
    return { ...s, w: round(clamp(s.w + dx, MIN, 1 - s.x)), h: round(clamp(s.h + dy, MIN, 1 - s.y)) };
  }
  return { ...s, x: round(clamp(s.x + dx, 0, 1 - s.w)), y: round(clamp(s.y + dy, 0, 1 - s.h)) };
}

export function TileEditor(props: {
  layout: Layout;
  seats: Seat[];
  onCommit: (slots: Slot[]) => void;
}) {
  const [slots, setSlots] = useState<Slot[]>(props.layout.slots.map((s) => ({ ...s })));
  const box = useRef<HTMLDivElement>(null);
  const drag = useRef<{ i: number; x0: number; y0: number; start: Slot; resize: boolean } | null>(null);
  const latest = useRef(slots);
  latest.current = slots;
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);

  const update = (i: number, s: Slot) => setSlots((all) => all.map((o, j) => (j === i ? s : o)));
  const down = (i: number, resize: boolean) => (e: PointerEvent) => {
    e.preventDefault();
    e.stopPropagation();
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    drag.current = { i, x0: e.clientX, y0: e.clientY, start: latest.current[i], resize };
  };
  const move = (e: PointerEvent) => {
    const d = drag.current;
    const r = box.current?.getBoundingClientRect();
    if (!d || !r) return;
    update(d.i, moved(d.start, (e.clientX - d.x0) / r.width, (e.clientY - d.y0) / r.height, d.resize));
  };
  const up = () => {
    if (!drag.current) return;
    drag.current = null;
    props.onCommit(latest.current);
  };
  const key = (i: number) => (e: KeyboardEvent) => {
    const step = 0.01;
    const d: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const v = d[e.key];
    if (!v) return;
    e.preventDefault();
    update(i, moved(latest.current[i], v[0], v[1], e.shiftKey));
    clearTimeout(timer.current);
    timer.current = window.setTimeout(() => props.onCommit(latest.current), 400);
  };

  return (
    <div class="tiles editing" ref={box} onPointerMove={move} onPointerUp={up} onPointerCancel={up}>
      {slots.map((s, i) => (
        <div
          key={i}
          class="tile"
          data-slot={i}
          role="button"
          tabIndex={0}
          aria-label={`Tile ${i}: ${label(i, props.seats)}. Arrow keys move it, Shift+arrows resize it.`}
          style={{ left: pct(s.x), top: pct(s.y), width: pct(s.w), height: pct(s.h), zIndex: String(s.z ?? 0) }}
          onPointerDown={down(i, false)}
          onKeyDown={key(i)}
        >
          <span class="tile-label">
            {label(i, props.seats)} · {Math.round(s.x * 100)},{Math.round(s.y * 100)} {Math.round(s.w * 100)}×
            {Math.round(s.h * 100)}
          </span>
          <span class="handle" data-handle={i} aria-hidden="true" onPointerDown={down(i, true)} />
        </div>
      ))}
    </div>
  );
}
