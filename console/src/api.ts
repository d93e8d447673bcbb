// The showmix API as the console uses it: every call carries the operator's token from the
// tab's session storage (never a URL), and errors keep the API's own words.

import { appendSnapshot, type History } from "./history";
import type { Snapshot } from "./types";

const TOKEN_KEY = "showmix.token";

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An error as the API words it: `{"error": code, "message": ...}` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

function authHeaders(t = token.get()): Record<string, string> {
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function failure(res: Response): Promise<ApiError> {
  let code = "http";
  let message = `${res.status} ${res.statusText}`;
  try {
    const e = await res.json();
    if (typeof e?.message === "string") message = e.message;
    if (typeof e?.error === "string") code = e.error;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

/** A JSON call; `body` is sent as JSON when given. */
export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  t?: string,
): Promise<T> {
  const headers = authHeaders(t ?? token.get());
  let payload: string | undefined;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** A binary GET (the snapshot). */
export async function apiBlob(path: string): Promise<Blob> {
  const res = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

/** The path of a URL the API gave with its own host, so it stays on this origin. */
export function samePath(url: string): string {
  const u = new URL(url, location.href);
  return u.pathname + u.search;
}

export type StreamState = "connecting" | "live" | "retrying" | "unauthorized";

/**
 * Reads `GET /v1/events` with fetch (EventSource cannot send the Authorization header) and
 * calls `onEvent` for every server-sent event; reconnects after the server's `retry` delay.
 * Returns a function that ends it.
 */
function stream(
  onEvent: (name: string, data: string) => void,
  onState: (s: StreamState, detail?: string) => void,
): () => void {
  const abort = new AbortController();
  let retry = 2000;
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      onState("connecting");
      try {
        const res = await fetch("/v1/events", {
          headers: authHeaders(),
          signal: abort.signal,
          cache: "no-store",
        });
        if (res.status === 401) {
          const e = await failure(res);
          onState("unauthorized", e.message);
          return;
        }
        if (!res.ok || !res.body) throw await failure(res);
        onState("live");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end: number;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let name = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "event") name = v;
              else if (field === "data") data.push(v);
              else if (field === "retry" && Number(v) > 0) retry = Number(v);
            }
            if (data.length) onEvent(name, data.join("\n"));
          }
        }
      } catch (e) {
        if (stopped) return;
        onState("retrying", e instanceof Error ? e.message : String(e));
      }
      if (stopped) return;
      onState("retrying");
      await new Promise((r) => setTimeout(r, retry));
    }
  };
  void run();
  return () => {
    stopped = true;
    abort.abort();
  };
}

type Relay =
  | { type: "hello" }
  | { type: "event"; name: string; data: string }
  | { type: "state"; state: StreamState; detail?: string };

/**
 * The event stream for this tab. A browser keeps at most six HTTP/1.1 connections to a host,
 * and every stream holds one for good: so the console's tabs share one. The tab holding the
 * Web Lock `showmix-events` reads the stream and relays every event to the others over a
 * BroadcastChannel (same origin only); when it closes, another tab takes the lock and the
 * stream. A tab that joins gets the latest history and snapshot from the leader at once.
 */
export function subscribe(
  onEvent: (name: string, data: string) => void,
  onState: (s: StreamState, detail?: string) => void,
): () => void {
  if (typeof BroadcastChannel === "undefined" || !navigator.locks) return stream(onEvent, onState);
  const channel = new BroadcastChannel("showmix-events");
  const abort = new AbortController();
  let leading = false;
  let stop: (() => void) | null = null;
  let release: (() => void) | null = null;
  // The leader's copy of what a joining tab needs.
  let history: History = {};
  let rooms: string | null = null;
  const post = (m: Relay) => channel.postMessage(m);
  channel.onmessage = (e: MessageEvent<Relay>) => {
    const m = e.data;
    if (m.type === "hello" && leading) {
      post({ type: "event", name: "history", data: JSON.stringify({ rooms: history }) });
      if (rooms) post({ type: "event", name: "rooms", data: rooms });
    } else if (m.type === "event" && !leading) {
      onState("live");
      onEvent(m.name, m.data);
    } else if (m.type === "state" && !leading) {
      onState(m.state, m.detail);
    }
  };
  navigator.locks
    .request("showmix-events", { signal: abort.signal }, () => {
      leading = true;
      return new Promise<void>((done) => {
        release = done;
        stop = stream(
          (name, data) => {
            if (name === "history") history = (JSON.parse(data) as { rooms: History }).rooms;
            if (name === "rooms") {
              rooms = data;
              history = appendSnapshot(history, JSON.parse(data) as Snapshot);
            }
            onEvent(name, data);
            post({ type: "event", name, data });
          },
          (state, detail) => {
            onState(state, detail);
            post({ type: "state", state, detail });
          },
        );
      });
    })
    .catch(() => {
      // aborted before the lock was ours
    });
  post({ type: "hello" });
  return () => {
    abort.abort();
    stop?.();
    release?.();
    channel.close();
  };
}
