// The showmix operator console: log in with the API token, watch every room live (one event
// stream), open a room to run it. Routes: /console/ (rooms) and /console/rooms/<id>.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, subscribe, token, type StreamState } from "./api";
import type { Point, Presets, Room, Snapshot, Stats } from "./types";
import { appendSnapshot } from "./history";
import { RoomList } from "./rooms";
import { RoomPage } from "./room";
import { BASE, currentRoute, navigate } from "./nav";
import { prewarmWhep } from "./preview";
import "./styles.css";

const NO_STATS: Stats = { mix_fps: 0, seats: [], rungs: [], cpu_percent: null, whep_viewers: 0 };

function Login({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any authorised call proves the token.
      await api("GET", "/v1/presets", undefined, value.trim());
      token.set(value.trim());
      setValue("");
      onDone();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>showmix console</h1>
      <form onSubmit={submit} aria-describedby={error ? "login-error" : undefined}>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          required
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error && (
          <p id="login-error" class="error" role="alert">
            {error}
          </p>
        )}
      </form>
      <p class="hint">The token stays in this tab only (session storage).</p>
    </main>
  );
}

function App() {
  const [authed, setAuthed] = useState(token.get() !== null);
  const [room, setRoom] = useState(currentRoute());
  const [snap, setSnap] = useState<Snapshot | null>(null);
  const [history, setHistory] = useState<Record<string, Point[]>>({});
  const [stream, setStream] = useState<{ state: StreamState; detail?: string }>({
    state: "connecting",
  });
  const [presets, setPresets] = useState<Presets | null>(null);
  // The room page's room before the first snapshot, so its preview starts at once.
  const [early, setEarly] = useState<Room | null>(null);

  useEffect(() => {
    const pop = () => setRoom(currentRoute());
    addEventListener("popstate", pop);
    return () => removeEventListener("popstate", pop);
  }, []);

  useEffect(() => {
    if (!authed || !room) return;
    api<Omit<Room, "stats">>("GET", `/v1/rooms/${room}`)
      .then((r) => setEarly({ ...r, stats: NO_STATS }))
      .catch(() => {});
  }, [authed, room]);

  useEffect(() => {
    if (!authed) return;
    api<Presets>("GET", "/v1/presets")
      .then(setPresets)
      .catch(() => {});
    return subscribe(
      (name, data) => {
        if (name === "rooms") {
          const s = JSON.parse(data) as Snapshot;
          setSnap(s);
          setHistory((h) => appendSnapshot(h, s));
        } else if (name === "history") {
          setHistory((JSON.parse(data) as { rooms: Record<string, Point[]> }).rooms);
        }
      },
      (state, detail) => {
        setStream({ state, detail });
        if (state === "unauthorized") {
          token.clear();
          setAuthed(false);
        }
      },
    );
  }, [authed]);

  if (!authed) return <Login onDone={() => setAuthed(true)} />;
  const logout = () => {
    token.clear();
    setSnap(null);
    setAuthed(false);
  };
  const current = room
    ? snap
      ? snap.rooms.find((r) => r.id === room)
      : early?.id === room
        ? early
        : undefined
    : undefined;
  return (
    <>
      <header class="top">
        <a
          href={BASE}
          onClick={(e) => {
            e.preventDefault();
            navigate(null);
          }}
        >
          showmix console
        </a>
        <span class={`stream ${stream.state}`} role="status" aria-live="polite">
          {stream.state === "live" ? "live" : stream.state}
          {snap && ` · server CPU ${snap.process_cpu_percent.toFixed(0)} %`}
        </span>
        <button type="button" onClick={logout}>
          Log out
        </button>
      </header>
      {room === null ? (
        <RoomList snap={snap} />
      ) : current ? (
        <RoomPage room={current} history={history[current.id] ?? []} presets={presets} />
      ) : (
        <main>
          <p>{snap ? `No room ${room} (it may have ended).` : "Loading…"}</p>
        </main>
      )}
    </>
  );
}

// Opened on a room page (a reload, a shared link): the preview's WebRTC offer starts now,
// alongside loading the room.
if (token.get() !== null && currentRoute() !== null) prewarmWhep();
const root = document.getElementById("app");
if (root) render(<App />, root);
