// The JSON the console reads, as the engine serialises it (engine/src/service.rs).

export interface Slot {
  x: number;
  y: number;
  w: number;
  h: number;
  z?: number;
  alpha?: number;
  fit?: "cover" | "contain";
}

export interface Layout {
  name: string;
  description?: string;
  background: string;
  slots: Slot[];
}

export interface Beauty {
  name: string;
  description?: string;
  smoothness: number;
  lightening: number;
  lightening_contrast: "low" | "normal" | "high";
  redness: number;
  sharpness: number;
  skin_mask: boolean;
}

export interface Ingest {
  rtmp?: string | null;
  rtmp_server?: string | null;
  rtmp_stream_key?: string | null;
  srt?: string | null;
  srt_stream_id: string;
  whip?: string | null;
  key: string;
}

export interface Seat {
  id: string;
  source: string;
  slot: number | null;
  volume: number;
  muted: boolean;
  beauty: Beauty;
  state: string;
  reason?: string;
  ingest?: Ingest;
}

export interface Output {
  id: string;
  kind: string;
  state: string;
  reason?: string;
  url?: string;
  dir?: string;
  rungs?: string[];
  files?: string[];
  retries?: number;
  next_retry_ms?: number;
}

export interface SeatStats {
  id: string;
  state: string;
  input_fps: number;
  input_bitrate_kbps: number | null;
  audio_level_dbfs: number;
  stalls: number;
}

export interface RungStats {
  name: string;
  width: number;
  height: number;
  encoded_fps: number;
  bitrate_kbps: number;
}

export interface Stats {
  mix_fps: number;
  seats: SeatStats[];
  rungs: RungStats[];
  cpu_percent: number | null;
  whep_viewers: number;
}

export interface Room {
  id: string;
  state: string;
  reason?: string;
  canvas: { width: number; height: number; fps: number };
  layout: Layout;
  ladder: { name: string; rungs: { name: string }[] };
  seats: Seat[];
  outputs: Output[];
  playback: { hls: string | null; whep: string | null };
  uptime_seconds: number;
  stats: Stats;
}

export interface Snapshot {
  time: number;
  process_cpu_percent: number;
  rooms: Room[];
}

export interface Point {
  t: number;
  kbps: number;
  fps: number;
  cpu: number | null;
}

export interface Presets {
  layouts: Record<string, Layout>;
  beauty: Record<string, Beauty>;
}
