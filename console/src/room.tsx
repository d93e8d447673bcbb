// One room: preview with its tiles, layout picker and editor, seats (state, figures, audio,
// publish URLs, beauty), outputs, snapshot, and the chart of the last minutes. Figures come
// from the event stream; every change goes through the API, and an API error is shown next to
// the control that caused it, in the API's words.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, apiBlob } from "./api";
import { Chart } from "./chart";
import { Preview } from "./preview";
import { TileEditor, TileOutlines } from "./tiles";
import type { Beauty, Output, Point, Presets, Room, Seat, SeatStats, Slot } from "./types";

/** Runs API calls for one control and keeps its last error. */
function useAction(): [(f: () => Promise<unknown>) => Promise<boolean>, string | null, boolean] {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await f();
      setError(null);
      return true;
    } catch (e) {
      setError(e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return [run, error, busy];
}

function ErrorText({ id, error }: { id: string; error: string | null }) {
  return error ? (
    <p id={id} class="error" role="alert">
      {error}
    </p>
  ) : null;
}

const SEAT_STATE: Record<string, string> = {
  connected: "live",
  waiting: "waiting",
  stalled: "stalled",
  failed: "failed",
};

function Copy({ label, value, id }: { label: string; value: string; id: string }) {
  const [done, setDone] = useState(false);
  return (
    <div class="copy">
      <label for={id}>{label}</label>
      <input id={id} readOnly value={value} onFocus={(e) => (e.target as HTMLInputElement).select()} />
      <button
        type="button"
        aria-label={`Copy ${label}`}
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(value);
            setDone(true);
            setTimeout(() => setDone(false), 1200);
          } catch {
            (document.getElementById(id) as HTMLInputElement | null)?.select();
          }
        }}
      >
        {done ? "Copied" : "Copy"}
      </button>
    </div>
  );
}

const SLIDERS: [keyof Beauty, string][] = [
  ["smoothness", "Smoothness"],
  ["lightening", "Lightening"],
  ["redness", "Redness"],
  ["sharpness", "Sharpness"],
];

function BeautyControls(props: { room: string; seat: Seat; presets: Presets | null }) {
  const { seat } = props;
  const [draft, setDraft] = useState<Beauty | null>(null);
  const [run, error] = useAction();
  const timer = useRef<number | undefined>(undefined);
  const clearing = useRef<number | undefined>(undefined);
  useEffect(
    () => () => {
      clearTimeout(timer.current);
      clearTimeout(clearing.current);
    },
    [],
  );
  const b = draft ?? seat.beauty;
  const path = `/v1/rooms/${props.room}/seats/${seat.id}`;
  const send = (beauty: unknown) =>
    run(() => api("PATCH", path, { beauty })).then((ok) => {
      clearTimeout(clearing.current);
      // The next snapshots carry the new values; until then keep showing the draft.
      clearing.current = window.setTimeout(() => setDraft(null), ok ? 1500 : 0);
    });
  const slide = (k: keyof Beauty, v: number | string | boolean) => {
    const next = { ...b, [k]: v } as Beauty;
    setDraft(next);
    clearTimeout(timer.current);
    clearTimeout(clearing.current);
    timer.current = window.setTimeout(() => {
      const { name: _n, description: _d, ...levels } = next;
      void send(levels);
    }, 120);
  };
  const errId = `beauty-error-${seat.id}`;
  return (
    <fieldset class="beauty" aria-describedby={error ? errId : undefined}>
      <legend>Beauty</legend>
      <label>
        Preset{" "}
        <select
          value={b.name in (props.presets?.beauty ?? {}) ? b.name : ""}
          onChange={(e) => {
            const name = (e.target as HTMLSelectElement).value;
            if (name) void send(name);
          }}
        >
          <option value="">custom</option>
          {Object.keys(props.presets?.beauty ?? {}).map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      {SLIDERS.map(([k, text]) => {
        const id = `beauty-${seat.id}-${k}`;
        const v = Number(b[k]);
        return (
          <div class="slider" key={k}>
            <label for={id}>{text}</label>
            <input
              id={id}
              type="range"
              min={0}
              max={1}
              step={0.05}
              value={v}
              data-beauty={k}
              onInput={(e) => slide(k, Number((e.target as HTMLInputElement).value))}
            />
            <output for={id}>{v.toFixed(2)}</output>
          </div>
        );
      })}
      <div class="slider">
        <label for={`beauty-${seat.id}-contrast`}>Contrast</label>
        <select
          id={`beauty-${seat.id}-contrast`}
          value={b.lightening_contrast}
          onChange={(e) => slide("lightening_contrast", (e.target as HTMLSelectElement).value)}
        >
          <option value="low">low</option>
          <option value="normal">normal</option>
          <option value="high">high</option>
        </select>
        <label class="check">
          <input
            type="checkbox"
            checked={b.skin_mask}
            onChange={(e) => slide("skin_mask", (e.target as HTMLInputElement).checked)}
          />{" "}
          Skin only
        </label>
      </div>
      <ErrorText id={errId} error={error} />
    </fieldset>
  );
}

function SeatCard(props: { room: Room; seat: Seat; stats?: SeatStats; presets: Presets | null }) {
  const { room, seat, stats } = props;
  const path = `/v1/rooms/${room.id}/seats/${seat.id}`;
  const [audio, audioError] = useAction();
  const [hide, hideError] = useAction();
  const [rotate, rotateError, rotating] = useAction();
  const [volume, setVolume] = useState<number | null>(null);
  const state = SEAT_STATE[seat.state] ?? seat.state;
  const level = stats?.audio_level_dbfs ?? -120;
  const hidden = seat.slot === null;
  const freeSlot = () => {
    const taken = new Set(room.seats.map((s) => s.slot));
    return room.layout.slots.findIndex((_, i) => !taken.has(i));
  };
  return (
    <article class="seat" data-seat={seat.id} aria-labelledby={`seat-${seat.id}`}>
      <h3 id={`seat-${seat.id}`}>
        {seat.id} <span class={`badge ${state}`}>{state}</span>
        {seat.reason && <span class="reason"> {seat.reason}</span>}
      </h3>
      <p class="figures">
        {seat.slot === null ? "hidden" : `slot ${seat.slot}`} · {stats ? stats.input_fps.toFixed(1) : "–"} fps
        {stats?.input_bitrate_kbps != null && ` · ${stats.input_bitrate_kbps.toFixed(0)} kbit/s`}
        {stats && stats.stalls > 0 && ` · ${stats.stalls} stalls`}
      </p>
      <div class="level">
        <label for={`level-${seat.id}`}>Audio</label>
        <meter id={`level-${seat.id}`} min={-60} max={0} low={-20} high={-6} optimum={-30} value={Math.max(-60, level)} />
        <span>{level <= -119 ? "silent" : `${level.toFixed(0)} dBFS`}</span>
      </div>
      <div class="audio">
        <label>
          <input
            type="checkbox"
            checked={seat.muted}
            onChange={(e) => void audio(() => api("PATCH", path, { muted: (e.target as HTMLInputElement).checked }))}
          />{" "}
          Muted
        </label>
        <label for={`vol-${seat.id}`}>Volume</label>
        <input
          id={`vol-${seat.id}`}
          type="range"
          min={0}
          max={2}
          step={0.05}
          value={volume ?? seat.volume}
          onInput={(e) => setVolume(Number((e.target as HTMLInputElement).value))}
          onChange={(e) =>
            void audio(() => api("PATCH", path, { volume: Number((e.target as HTMLInputElement).value) })).then(() =>
              setTimeout(() => setVolume(null), 1500),
            )
          }
        />
        <output>{(volume ?? seat.volume).toFixed(2)}</output>
        <button
          type="button"
          onClick={() =>
            void hide(async () => {
              if (hidden) {
                const slot = freeSlot();
                if (slot < 0) throw new Error("no free slot in this layout: pick a layout with more slots");
                await api("PATCH", path, { slot });
              } else {
                await api("PATCH", path, { slot: null });
              }
            })
          }
        >
          {hidden ? "Show" : "Hide"}
        </button>
      </div>
      <ErrorText id={`audio-error-${seat.id}`} error={audioError} />
      <ErrorText id={`hide-error-${seat.id}`} error={hideError} />
      {seat.ingest && (
        <details class="ingest">
          <summary>Publish URLs</summary>
          {seat.ingest.rtmp && <Copy label="RTMP" value={seat.ingest.rtmp} id={`rtmp-${seat.id}`} />}
          {seat.ingest.srt && <Copy label="SRT" value={seat.ingest.srt} id={`srt-${seat.id}`} />}
          {seat.ingest.whip && <Copy label="WHIP" value={seat.ingest.whip} id={`whip-${seat.id}`} />}
          <Copy label="Key" value={seat.ingest.key} id={`key-${seat.id}`} />
          <button
            type="button"
            disabled={rotating}
            onClick={() => void rotate(() => api("POST", `${path}/key`))}
          >
            Rotate key
          </button>
          <ErrorText id={`rotate-error-${seat.id}`} error={rotateError} />
        </details>
      )}
      <BeautyControls room={room.id} seat={seat} presets={props.presets} />
    </article>
  );
}

function OutputRow({ room, o }: { room: string; o: Output }) {
  const [run, error, busy] = useAction();
  return (
    <li class="output" data-output={o.id}>
      <strong>{o.id}</strong> <span class="kind">{o.kind}</span> <span class={`badge ${o.state}`}>{o.state}</span>
      {o.retries !== undefined && o.retries > 0 && <span> · {o.retries} retries</span>}
      {o.next_retry_ms != null && <span> · next try in {Math.round(o.next_retry_ms / 100) / 10} s</span>}
      {o.url && <span class="url"> · {o.url}</span>}
      {o.rungs && o.rungs.length > 0 && <span> · {o.rungs.join(", ")}</span>}
      {o.reason && <p class="reason">{o.reason}</p>}
      {o.files && o.files.length > 0 && (
        <ul class="files">
          {o.files.slice(-5).map((f) => (
            <li key={f}>{f}</li>
          ))}
        </ul>
      )}
      <button
        type="button"
        disabled={busy}
        aria-label={`Remove output ${o.id}`}
        onClick={() => void run(() => api("DELETE", `/v1/rooms/${room}/outputs/${o.id}`))}
      >
        Remove
      </button>
      <ErrorText id={`output-error-${o.id}`} error={error} />
    </li>
  );
}

function Outputs({ room }: { room: Room }) {
  const [kind, setKind] = useState("rtmp");
  const [id, setId] = useState("");
  const [url, setUrl] = useState("");
  const [rung, setRung] = useState("");
  const [run, error, busy] = useAction();
  const add = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = { kind };
    if (id) body.id = id;
    if (kind === "record") {
      if (rung) body.rungs = [rung];
    } else {
      body.url = url;
      if (rung) body.rung = rung;
    }
    void run(() => api("POST", `/v1/rooms/${room.id}/outputs`, body)).then((ok) => {
      if (ok) {
        setId("");
        setUrl("");
      }
    });
  };
  return (
    <section class="outputs" aria-labelledby="outputs-h">
      <h2 id="outputs-h">Outputs</h2>
      <ul>
        {room.playback.hls && (
          <li class="output">
            <strong>LL-HLS</strong> <span class="badge live">on</span>{" "}
            <span class="url">{new URL(room.playback.hls).pathname.replace(/~[^/]*/, "~…")}</span>
          </li>
        )}
        {room.outputs.map((o) => (
          <OutputRow key={o.id} room={room.id} o={o} />
        ))}
      </ul>
      <form class="add-output" onSubmit={add} aria-describedby={error ? "add-output-error" : undefined}>
        <label>
          Kind{" "}
          <select value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
            <option value="rtmp">RTMP push</option>
            <option value="srt">SRT push</option>
            <option value="record">Recording</option>
          </select>
        </label>
        <label>
          Id <input value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} placeholder="cdn-a" />
        </label>
        {kind !== "record" && (
          <label>
            URL{" "}
            <input
              value={url}
              required
              onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
              placeholder={kind === "rtmp" ? "rtmp://ingest.example.com/live/KEY" : "srt://host:9000?streamid=…"}
            />
          </label>
        )}
        <label>
          Rung{" "}
          <select value={rung} onChange={(e) => setRung((e.target as HTMLSelectElement).value)}>
            <option value="">top</option>
            {room.ladder.rungs.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy}>
          Add output
        </button>
        <ErrorText id="add-output-error" error={error} />
      </form>
    </section>
  );
}

function LayoutControls(props: {
  room: Room;
  presets: Presets | null;
  editing: boolean;
  setEditing: (v: boolean) => void;
  error: string | null;
  run: (f: () => Promise<unknown>) => Promise<boolean>;
}) {
  const { room } = props;
  const names = Object.keys(props.presets?.layouts ?? {});
  return (
    <div class="layout-controls">
      <label for="layout-pick">Layout</label>
      <select
        id="layout-pick"
        value={names.includes(room.layout.name) ? room.layout.name : ""}
        aria-describedby={props.error ? "layout-error" : undefined}
        onChange={(e) => {
          const name = (e.target as HTMLSelectElement).value;
          if (name) void props.run(() => api("PUT", `/v1/rooms/${room.id}/layout`, name));
        }}
      >
        <option value="">{room.layout.name} (custom)</option>
        {names.map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
      <button type="button" aria-pressed={props.editing} onClick={() => props.setEditing(!props.editing)}>
        {props.editing ? "Done editing" : "Edit tiles"}
      </button>
      <ErrorText id="layout-error" error={props.error} />
    </div>
  );
}

function SnapshotButton({ room }: { room: string }) {
  const [run, error, busy] = useAction();
  return (
    <span class="snapshot">
      <button
        type="button"
        disabled={busy}
        onClick={() =>
          void run(async () => {
            const blob = await apiBlob(`/v1/rooms/${room}/snapshot.jpg`);
            const a = document.createElement("a");
            a.href = URL.createObjectURL(blob);
            a.download = `${room}-${new Date().toISOString().replace(/[:.]/g, "-")}.jpg`;
            document.body.appendChild(a);
            a.click();
            a.remove();
            setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
          })
        }
      >
        Download snapshot
      </button>
      <ErrorText id="snapshot-error" error={error} />
    </span>
  );
}

export function RoomPage(props: { room: Room; history: Point[]; presets: Presets | null }) {
  const { room } = props;
  const [editing, setEditing] = useState(false);
  const [runLayout, layoutError] = useAction();
  const commit = (slots: Slot[]) =>
    void runLayout(() =>
      api("PUT", `/v1/rooms/${room.id}/layout`, {
        name: "custom",
        background: room.layout.background,
        slots,
      }),
    );
  const stats = new Map(room.stats.seats.map((s) => [s.id, s]));
  const top = room.stats.rungs[0];
  return (
    <main class="room" data-room={room.id}>
      <div class="room-head">
        <h1>
          {room.id} <span class={`badge ${room.state}`}>{room.state}</span>
        </h1>
        {room.reason && <p class="reason">{room.reason}</p>}
        <p class="figures">
          {room.canvas.width}×{room.canvas.height} @ {room.canvas.fps} · ladder {room.ladder.name} · mix{" "}
          {room.stats.mix_fps.toFixed(1)} fps
          {top && ` · ${top.name} ${top.bitrate_kbps.toFixed(0)} kbit/s`} · CPU{" "}
          {room.stats.cpu_percent === null ? "…" : `${room.stats.cpu_percent.toFixed(0)} %`} · up{" "}
          {Math.round(room.uptime_seconds)} s
        </p>
        <SnapshotButton room={room.id} />
      </div>
      <div class="room-grid">
        <section class="stage" aria-label="Preview and layout">
          <Preview
            roomId={room.id}
            whep={room.playback.whep}
            hls={room.playback.hls}
            aspect={room.canvas.width / room.canvas.height}
          >
            {editing ? (
              <TileEditor
                key={JSON.stringify(room.layout.slots)}
                layout={room.layout}
                seats={room.seats}
                onCommit={commit}
              />
            ) : (
              <TileOutlines layout={room.layout} seats={room.seats} />
            )}
          </Preview>
          <LayoutControls
            room={room}
            presets={props.presets}
            editing={editing}
            setEditing={setEditing}
            error={layoutError}
            run={runLayout}
          />
          <Chart points={props.history} />
        </section>
        <section class="seats" aria-labelledby="seats-h">
          <h2 id="seats-h">Seats</h2>
          {room.seats.map((s) => (
            <SeatCard key={s.id} room={room} seat={s} stats={stats.get(s.id)} presets={props.presets} />
          ))}
        </section>
      </div>
      <Outputs room={room} />
    </main>
  );
}
