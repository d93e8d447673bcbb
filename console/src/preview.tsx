// The live preview of a room's mix: WebRTC (WHEP) first, LL-HLS through hls.js when WHEP
// fails or shows no frame in time. `?preview=hls` or `?preview=whep` picks one (benchmarks).
// The video element reports what it played in data attributes: data-mode, and
// data-first-frame (performance.now() of the first presented frame, i.e. ms since page load).

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { apiBlob, samePath } from "./api";

const WHEP_FIRST_FRAME_MS = 4000;

type Stop = () => void;

/** Milestones of the preview's start (ms since page load), kept on the video element as
 * data-timeline for benchmarks. */
function mark(v: HTMLVideoElement, name: string) {
  const t = JSON.parse(v.dataset.timeline ?? "{}") as Record<string, number>;
  if (!(name in t)) t[name] = Math.round(performance.now());
  v.dataset.timeline = JSON.stringify(t);
}

/** A WHEP peer connection with its offer under way, made before the room page is up. */
let warm: { pc: RTCPeerConnection; offered: Promise<void>; timer: number } | null = null;

function recvPeer(): RTCPeerConnection {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  return pc;
}

/** Starts the preview's offer at once when the console opens on a room page: Chromium takes
 * 100-150 ms to create it, which then overlaps loading the room instead of following it.
 * Unused after 10 s (the page went elsewhere), it is closed. */
export function prewarmWhep() {
  if (warm || typeof RTCPeerConnection === "undefined") return;
  if (new URLSearchParams(location.search).get("preview") === "hls") return;
  const pc = recvPeer();
  const offered = pc.createOffer().then((o) => pc.setLocalDescription(o));
  offered.catch(() => {});
  const timer = window.setTimeout(() => {
    if (warm?.pc === pc) warm = null;
    pc.close();
  }, 10_000);
  warm = { pc, offered, timer };
}

async function startWhep(v: HTMLVideoElement, url: string): Promise<Stop> {
  const w = warm;
  warm = null;
  if (w) clearTimeout(w.timer);
  const pc = w?.pc ?? recvPeer();
  let session: string | null = null;
  const stop = () => {
    removeEventListener("pagehide", stop);
    pc.close();
    if (session) void fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
    session = null;
  };
  // A closed tab ends its WHEP session at once instead of leaving it to the server's timeout.
  addEventListener("pagehide", stop);
  try {
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      mark(v, "track");
      stream.addTrack(e.track);
      v.srcObject = stream;
    };
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") mark(v, "connected");
    });
    mark(v, "whep");
    if (w) {
      mark(v, "warm");
      await w.offered;
    } else await pc.setLocalDescription(await pc.createOffer());
    // The offer goes out at once, without waiting for our ICE candidates: the server answers
    // with its own, our connectivity checks reach them, and it learns our address from those
    // (peer-reflexive candidates). Waiting for Chromium's gathering cost about 250 ms, and its
    // host candidates are mDNS names a server cannot resolve anyway.
    mark(v, "offer");
    const path = samePath(url);
    const res = await fetch(path, {
      method: "POST",
      body: pc.localDescription?.sdp ?? "",
      headers: { "Content-Type": "application/sdp" },
    });
    if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
    mark(v, "answer");
    const loc = res.headers.get("Location");
    if (loc) session = samePath(new URL(loc, location.origin + path).href);
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    return stop;
  } catch (e) {
    stop();
    throw e;
  }
}

async function startHls(v: HTMLVideoElement, url: string): Promise<Stop> {
  const src = samePath(url);
  mark(v, "hls");
  const { default: Hls } = await import("hls.js");
  mark(v, "hlsLoaded");
  if (!Hls.isSupported()) {
    v.src = src;
    return () => v.removeAttribute("src");
  }
  const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
  hls.loadSource(src);
  hls.attachMedia(v);
  // Once playing, jump to where the live edge is now (see the README's player).
  const seek = (n: number) => {
    const t = hls.liveSyncPosition;
    const b = v.buffered;
    if (t !== null && b.length && t > v.currentTime + 0.1 && t < b.end(b.length - 1)) v.currentTime = t;
    else if (n < 10) setTimeout(() => seek(n + 1), 200);
  };
  v.addEventListener("playing", () => setTimeout(() => seek(0), 200), { once: true });
  return () => hls.destroy();
}

/** Resolves at the first presented frame. */
function firstFrame(v: HTMLVideoElement): Promise<void> {
  return new Promise((resolve) => {
    const el = v as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => number };
    if (el.requestVideoFrameCallback) el.requestVideoFrameCallback(() => resolve());
    else el.addEventListener("playing", () => resolve(), { once: true });
  });
}

export function Preview(props: {
  roomId: string;
  whep: string | null;
  hls: string | null;
  aspect: number;
  children?: ComponentChildren;
}) {
  const ref = useRef<HTMLVideoElement>(null);
  const [mode, setMode] = useState("starting");
  const [note, setNote] = useState<string | null>(null);
  const [poster, setPoster] = useState<string | undefined>(undefined);
  // The playback URLs carry fresh tokens every second: start once per room with the first.
  const urls = useRef({ whep: props.whep, hls: props.hls });
  urls.current = { whep: urls.current.whep ?? props.whep, hls: urls.current.hls ?? props.hls };

  useEffect(() => {
    const v = ref.current;
    if (!v) return;
    let stop: Stop | null = null;
    let ended = false;
    const want = new URLSearchParams(location.search).get("preview");
    const play = async () => {
      const { whep, hls } = urls.current;
      if (want !== "hls" && whep) {
        try {
          setMode("whep");
          v.dataset.mode = "whep";
          stop = await startWhep(v, whep);
          const shown = await Promise.race([
            firstFrame(v).then(() => true),
            new Promise<boolean>((r) => setTimeout(() => r(false), WHEP_FIRST_FRAME_MS)),
          ]);
          if (shown || want === "whep" || ended) return;
          setNote("WebRTC showed no frame: LL-HLS instead");
        } catch (e) {
          if (ended) return;
          setNote(`WebRTC failed (${e instanceof Error ? e.message : e}): LL-HLS instead`);
        }
        stop?.();
        stop = null;
        v.srcObject = null;
      }
      if (hls && !ended) {
        setMode("hls");
        v.dataset.mode = "hls";
        stop = await startHls(v, hls);
      } else if (!hls) {
        setMode("none");
        setNote("This room has no LL-HLS playback and WebRTC did not play.");
      }
    };
    mark(v, "mounted");
    void firstFrame(v).then(() => {
      mark(v, "frame");
      v.dataset.firstFrame = String(Math.round(performance.now()));
    });
    void play();
    // The current mix as a still until the video's first frame.
    let still: string | undefined;
    void apiBlob(`/v1/rooms/${props.roomId}/snapshot.jpg?width=640`)
      .then((b) => {
        if (ended) return;
        still = URL.createObjectURL(b);
        setPoster(still);
      })
      .catch(() => {});
    return () => {
      if (still) URL.revokeObjectURL(still);
      ended = true;
      stop?.();
      v.srcObject = null;
    };
  }, [props.roomId]);

  return (
    <div class="preview-wrap">
      <div class="preview" style={{ aspectRatio: String(props.aspect) }}>
        <video
          ref={ref}
          id="preview"
          muted
          autoplay
          playsInline
          poster={poster}
          aria-label={`Live preview of room ${props.roomId}`}
        />
        {props.children}
      </div>
      <p class="preview-mode">
        Preview: {mode === "whep" ? "WebRTC (WHEP)" : mode === "hls" ? "LL-HLS (hls.js)" : mode}
        {note && <span class="note"> · {note}</span>}
      </p>
    </div>
  );
}
