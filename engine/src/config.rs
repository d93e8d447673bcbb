//! `showmix serve` configuration: an embedded default, then a TOML file, then `SHOWMIX_*`
//! environment variables, then command-line flags (each later source wins). Every invalid
//! value is reported at once, with the allowed range.
//!
//! Values are read through the small `Source` trait so tests pass a map instead of the process
//! environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::presets::validate::{Checker, Invalid};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Bearer token for `/v1`; required when `listen` is not a loopback address.
    pub api_token: Option<String>,
    pub max_rooms: u32,
    pub max_seats_per_room: u32,
    /// Largest request body, bytes.
    pub max_body_bytes: u64,
    /// Longest a request may take, milliseconds.
    pub request_timeout_ms: u64,
    /// How long shutdown waits for rooms to finalise their outputs, milliseconds.
    pub shutdown_grace_ms: u64,
    /// User presets directory (layouts/, ladders/, beauty/).
    pub presets_dir: Option<PathBuf>,
    /// Where `file` and `record` outputs write by default: relative `dir`s resolve under it,
    /// and it is always an allowed root. Created at start-up when missing.
    pub data_dir: PathBuf,
    /// Further directories `file`/`record` outputs may write under (besides `data_dir`). An
    /// output whose directory resolves (symlinks included) outside every root is refused.
    pub output_roots: Vec<PathBuf>,
    /// RTMP ingest listener, `<ip>:<port>` or `off`.
    pub rtmp_listen: String,
    /// SRT ingest listener, `<ip>:<port>` or `off`.
    pub srt_listen: String,
    /// Host name publishers use in the ingest URLs the API hands out; default: the API's
    /// listen address, or 127.0.0.1 when that is unspecified (0.0.0.0).
    pub public_host: Option<String>,
    /// No media for this long makes a seat `stalled`, milliseconds.
    pub stall_timeout_ms: u64,
    /// How long a stalled seat's tile keeps its last frame before the placeholder, ms.
    pub hold_last_frame_ms: u64,
    /// Open ingest connections per listener.
    pub max_ingest_connections: u32,
    /// Signed playback tokens on `/live/`: `auto` (required when `listen` is not a loopback
    /// address), `on` or `off`.
    pub playback_tokens: String,
    /// Secret the playback tokens are signed with (16..=256 characters). Unset: a random
    /// secret per process, so tokens end with the process.
    pub playback_secret: Option<String>,
    /// Lifetime of the tokens the API hands out, seconds.
    pub playback_token_ttl_s: u64,
    /// First retry delay of push outputs whose destination fails, milliseconds; doubles up to
    /// `push_backoff_max_ms`.
    pub push_backoff_initial_ms: u64,
    pub push_backoff_max_ms: u64,
    /// STUN/TURN servers for WebRTC (`stun:host[:port]`, `turn:user:password@host[:port]`),
    /// used by showmix's own peers and advertised to WHIP/WHEP clients in `Link` headers.
    pub ice_servers: Vec<String>,
    /// Local UDP ports WebRTC media uses, `<min>-<max>` (open them in the firewall); empty:
    /// any free port.
    pub webrtc_udp_ports: String,
    /// Addresses WebRTC host candidates are gathered on. Empty: the API's listen address, or
    /// every interface but loopback when it listens on 0.0.0.0.
    pub webrtc_addresses: Vec<std::net::IpAddr>,
    /// A WebRTC session whose ICE has not connected by then is torn down, milliseconds.
    pub webrtc_connect_timeout_ms: u64,
    /// How long a WHIP publisher's jitter buffer waits for a late or resent packet, ms.
    pub webrtc_jitter_buffer_ms: u64,
    /// WebRTC sessions (publishers and viewers together) the process serves at once.
    pub max_webrtc_sessions: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_token: None,
            max_rooms: 16,
            max_seats_per_room: 16,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            presets_dir: None,
            data_dir: PathBuf::from("showmix-data"),
            output_roots: Vec::new(),
            rtmp_listen: "0.0.0.0:1935".into(),
            srt_listen: "0.0.0.0:9000".into(),
            public_host: None,
            stall_timeout_ms: 500,
            hold_last_frame_ms: 1000,
            max_ingest_connections: 64,
            playback_tokens: "auto".into(),
            playback_secret: None,
            playback_token_ttl_s: 6 * 3600,
            push_backoff_initial_ms: 1000,
            push_backoff_max_ms: 30_000,
            ice_servers: Vec::new(),
            webrtc_udp_ports: String::new(),
            webrtc_addresses: Vec::new(),
            webrtc_connect_timeout_ms: 10_000,
            webrtc_jitter_buffer_ms: 50,
            max_webrtc_sessions: 500,
        }
    }
}

/// Where raw key/value settings come from (the environment, or a map in tests).
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

pub struct Env;

impl Source for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// Command-line values; `None` leaves the setting alone.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub api_token: Option<String>,
    pub rtmp_listen: Option<String>,
    pub srt_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(Invalid),
}

impl Config {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn timing(&self) -> crate::room::SeatTiming {
        crate::room::SeatTiming {
            stall_timeout: Duration::from_millis(self.stall_timeout_ms),
            hold_last_frame: Duration::from_millis(self.hold_last_frame_ms),
        }
    }

    /// The RTMP listener address, `None` when off. Valid after `load`.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        listener_addr(&self.rtmp_listen).ok().flatten()
    }

    pub fn srt_addr(&self) -> Option<SocketAddr> {
        listener_addr(&self.srt_listen).ok().flatten()
    }

    /// Whether `/live/` requests need a playback token.
    pub fn playback_tokens_required(&self) -> bool {
        match self.playback_tokens.as_str() {
            "on" => true,
            "off" => false,
            _ => !self.listen.ip().is_loopback(),
        }
    }

    pub fn playback_token_ttl(&self) -> Duration {
        Duration::from_secs(self.playback_token_ttl_s)
    }

    pub fn push_backoff(&self) -> crate::push::Backoff {
        crate::push::Backoff {
            initial: Duration::from_millis(self.push_backoff_initial_ms),
            max: Duration::from_millis(self.push_backoff_max_ms),
        }
    }

    /// WebRTC settings for every peer. Valid after `load`.
    pub fn ice(&self) -> crate::webrtc::IceConfig {
        let addresses = if !self.webrtc_addresses.is_empty() {
            self.webrtc_addresses.clone()
        } else if self.listen.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![self.listen.ip()]
        };
        crate::webrtc::IceConfig {
            servers: self
                .ice_servers
                .iter()
                .filter_map(|u| crate::webrtc::ice::IceServer::parse(u).ok())
                .collect(),
            udp_ports: crate::webrtc::ice::parse_port_range(&self.webrtc_udp_ports).ok(),
            addresses,
            connect_timeout: Duration::from_millis(self.webrtc_connect_timeout_ms),
            jitter_buffer: Duration::from_millis(self.webrtc_jitter_buffer_ms),
        }
    }

    /// The host in ingest URLs.
    pub fn public_host(&self) -> String {
        match &self.public_host {
            Some(h) => h.clone(),
            None if self.listen.ip().is_unspecified() => "127.0.0.1".into(),
            None => self.listen.ip().to_string(),
        }
    }

    /// Default, then `file`, then environment, then flags; validated.
    pub fn load(
        file: Option<&std::path::Path>,
        env: &dyn Source,
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?
            }
            None => Config::default(),
        };
        let mut c = Checker::new();
        let set_num = |c: &mut Checker, key: &str, target: &mut u64| {
            if let Some(v) = env.get(key) {
                match v.trim().parse::<u64>() {
                    Ok(n) => *target = n,
                    Err(_) => c.fail(key, format!("{v:?} is not a whole number")),
                }
            }
        };
        let (mut rooms, mut seats) = (u64::from(cfg.max_rooms), u64::from(cfg.max_seats_per_room));
        set_num(&mut c, "SHOWMIX_MAX_ROOMS", &mut rooms);
        set_num(&mut c, "SHOWMIX_MAX_SEATS_PER_ROOM", &mut seats);
        set_num(&mut c, "SHOWMIX_MAX_BODY_BYTES", &mut cfg.max_body_bytes);
        set_num(
            &mut c,
            "SHOWMIX_REQUEST_TIMEOUT_MS",
            &mut cfg.request_timeout_ms,
        );
        set_num(
            &mut c,
            "SHOWMIX_SHUTDOWN_GRACE_MS",
            &mut cfg.shutdown_grace_ms,
        );
        set_num(
            &mut c,
            "SHOWMIX_STALL_TIMEOUT_MS",
            &mut cfg.stall_timeout_ms,
        );
        set_num(
            &mut c,
            "SHOWMIX_HOLD_LAST_FRAME_MS",
            &mut cfg.hold_last_frame_ms,
        );
        if let Some(v) = flags
            .rtmp_listen
            .clone()
            .or_else(|| env.get("SHOWMIX_RTMP_LISTEN"))
        {
            cfg.rtmp_listen = v;
        }
        if let Some(v) = flags
            .srt_listen
            .clone()
            .or_else(|| env.get("SHOWMIX_SRT_LISTEN"))
        {
            cfg.srt_listen = v;
        }
        if let Some(v) = env.get("SHOWMIX_PLAYBACK_TOKENS") {
            cfg.playback_tokens = v;
        }
        if let Some(v) = env.get("SHOWMIX_PLAYBACK_SECRET") {
            cfg.playback_secret = Some(v);
        }
        set_num(
            &mut c,
            "SHOWMIX_PLAYBACK_TOKEN_TTL_S",
            &mut cfg.playback_token_ttl_s,
        );
        if let Some(v) = env.get("SHOWMIX_PUBLIC_HOST") {
            cfg.public_host = Some(v);
        }
        if let Some(v) = env.get("SHOWMIX_ICE_SERVERS") {
            cfg.ice_servers = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env.get("SHOWMIX_WEBRTC_UDP_PORTS") {
            cfg.webrtc_udp_ports = v;
        }
        if let Some(v) = env.get("SHOWMIX_WEBRTC_ADDRESSES") {
            let mut addrs = Vec::new();
            for a in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match a.parse() {
                    Ok(ip) => addrs.push(ip),
                    Err(_) => c.fail(
                        "webrtc_addresses",
                        format!("{a:?} is not an IP address (allowed: e.g. 192.0.2.10,127.0.0.1)"),
                    ),
                }
            }
            cfg.webrtc_addresses = addrs;
        }
        set_num(
            &mut c,
            "SHOWMIX_WEBRTC_CONNECT_TIMEOUT_MS",
            &mut cfg.webrtc_connect_timeout_ms,
        );
        set_num(
            &mut c,
            "SHOWMIX_WEBRTC_JITTER_BUFFER_MS",
            &mut cfg.webrtc_jitter_buffer_ms,
        );
        let mut sessions = u64::from(cfg.max_webrtc_sessions);
        set_num(&mut c, "SHOWMIX_MAX_WEBRTC_SESSIONS", &mut sessions);
        cfg.max_webrtc_sessions = sessions.min(u64::from(u32::MAX)) as u32;
        cfg.max_rooms = rooms.min(u64::from(u32::MAX)) as u32;
        cfg.max_seats_per_room = seats.min(u64::from(u32::MAX)) as u32;
        if let Some(v) = env.get("SHOWMIX_PRESETS_DIR") {
            cfg.presets_dir = Some(v.into());
        }
        if let Some(v) = flags
            .data_dir
            .clone()
            .or_else(|| env.get("SHOWMIX_DATA_DIR").map(PathBuf::from))
        {
            cfg.data_dir = v;
        }
        if cfg.data_dir.as_os_str().is_empty() {
            c.fail(
                "data_dir",
                "must not be empty (allowed: a directory path, e.g. ./showmix-data)",
            );
        }
        if let Some(v) = env.get("SHOWMIX_OUTPUT_ROOTS") {
            cfg.output_roots = v
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
        }
        let listen = flags.listen.clone().or_else(|| env.get("SHOWMIX_LISTEN"));
        if let Some(v) = listen {
            match v.parse::<SocketAddr>() {
                Ok(a) => cfg.listen = a,
                Err(_) => c.fail(
                    "listen",
                    format!("{v:?} is not an address (allowed: <ip>:<port>, e.g. 127.0.0.1:8080)"),
                ),
            }
        }
        if let Some(t) = flags
            .api_token
            .clone()
            .or_else(|| env.get("SHOWMIX_API_TOKEN"))
        {
            cfg.api_token = Some(t);
        }
        cfg.check(&mut c);
        c.finish().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    fn check(&self, c: &mut Checker) {
        c.range_u32("max_rooms", self.max_rooms, 1, 1000);
        c.range_u32(
            "max_seats_per_room",
            self.max_seats_per_room,
            1,
            crate::presets::layout::MAX_SLOTS as u32,
        );
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            c.fail(
                "max_body_bytes",
                format!(
                    "{} is out of range (allowed 1024..=16777216)",
                    self.max_body_bytes
                ),
            );
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            c.fail(
                "request_timeout_ms",
                format!(
                    "{} is out of range (allowed 100..=600000)",
                    self.request_timeout_ms
                ),
            );
        }
        if !(100..=600_000).contains(&self.shutdown_grace_ms) {
            c.fail(
                "shutdown_grace_ms",
                format!(
                    "{} is out of range (allowed 100..=600000)",
                    self.shutdown_grace_ms
                ),
            );
        }
        for (field, v) in [
            ("rtmp_listen", &self.rtmp_listen),
            ("srt_listen", &self.srt_listen),
        ] {
            if listener_addr(v).is_err() {
                c.fail(
                    field,
                    format!("{v:?} is not an address (allowed: <ip>:<port> or off)"),
                );
            }
        }
        if !(50..=60_000).contains(&self.stall_timeout_ms) {
            c.fail(
                "stall_timeout_ms",
                format!(
                    "{} is out of range (allowed 50..=60000)",
                    self.stall_timeout_ms
                ),
            );
        }
        if self.hold_last_frame_ms > 60_000 {
            c.fail(
                "hold_last_frame_ms",
                format!(
                    "{} is out of range (allowed 0..=60000)",
                    self.hold_last_frame_ms
                ),
            );
        }
        c.range_u32(
            "max_ingest_connections",
            self.max_ingest_connections,
            1,
            100_000,
        );
        if !matches!(self.playback_tokens.as_str(), "auto" | "on" | "off") {
            c.fail(
                "playback_tokens",
                format!(
                    "{:?} is not allowed (allowed: auto, on, off)",
                    self.playback_tokens
                ),
            );
        }
        if let Some(s) = &self.playback_secret
            && !(16..=256).contains(&s.len())
        {
            c.fail("playback_secret", "must be 16..=256 characters");
        }
        if !(60..=30 * 86_400).contains(&self.playback_token_ttl_s) {
            c.fail(
                "playback_token_ttl_s",
                format!(
                    "{} is out of range (allowed 60..=2592000)",
                    self.playback_token_ttl_s
                ),
            );
        }
        if !(100..=60_000).contains(&self.push_backoff_initial_ms) {
            c.fail(
                "push_backoff_initial_ms",
                format!(
                    "{} is out of range (allowed 100..=60000)",
                    self.push_backoff_initial_ms
                ),
            );
        }
        if self.push_backoff_max_ms < self.push_backoff_initial_ms
            || self.push_backoff_max_ms > 600_000
        {
            c.fail(
                "push_backoff_max_ms",
                format!(
                    "{} is out of range (allowed push_backoff_initial_ms..=600000)",
                    self.push_backoff_max_ms
                ),
            );
        }
        for (i, u) in self.ice_servers.iter().enumerate() {
            if let Err(e) = crate::webrtc::ice::IceServer::parse(u) {
                c.fail(format!("ice_servers[{i}]"), e);
            }
        }
        if !self.webrtc_udp_ports.is_empty()
            && let Err(e) = crate::webrtc::ice::parse_port_range(&self.webrtc_udp_ports)
        {
            c.fail("webrtc_udp_ports", e);
        }
        for a in &self.webrtc_addresses {
            if a.is_unspecified() || a.is_multicast() {
                c.fail(
                    "webrtc_addresses",
                    format!("{a} is not a unicast address of this machine"),
                );
            }
        }
        if !(1000..=120_000).contains(&self.webrtc_connect_timeout_ms) {
            c.fail(
                "webrtc_connect_timeout_ms",
                format!(
                    "{} is out of range (allowed 1000..=120000)",
                    self.webrtc_connect_timeout_ms
                ),
            );
        }
        if !(0..=2000).contains(&self.webrtc_jitter_buffer_ms) {
            c.fail(
                "webrtc_jitter_buffer_ms",
                format!(
                    "{} is out of range (allowed 0..=2000)",
                    self.webrtc_jitter_buffer_ms
                ),
            );
        }
        c.range_u32("max_webrtc_sessions", self.max_webrtc_sessions, 1, 100_000);
        match &self.api_token {
            Some(t) if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) => {
                c.fail(
                    "api_token",
                    "must be 16..=256 printable ASCII characters without spaces",
                );
            }
            None if !self.listen.ip().is_loopback() => c.fail(
                "api_token",
                format!(
                    "is required to listen on {} (a non-loopback address); set --api-token or SHOWMIX_API_TOKEN",
                    self.listen
                ),
            ),
            _ => {}
        }
    }
}

/// `off` or an address.
fn listener_addr(v: &str) -> Result<Option<SocketAddr>, ()> {
    if v == "off" {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default() {
        let c = Config::load(None, &env(&[]), &Flags::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_body_bytes, 65536);
        assert!(c.api_token.is_none());
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\nmax_rooms = 4\nmax_seats_per_room = 9\n",
        )
        .unwrap();
        let e = env(&[
            ("SHOWMIX_MAX_ROOMS", "5"),
            ("SHOWMIX_LISTEN", "127.0.0.1:9001"),
        ]);
        let c = Config::load(Some(&f), &e, &Flags::default()).unwrap();
        assert_eq!(
            (c.max_rooms, c.max_seats_per_room, c.listen.port()),
            (5, 9, 9001)
        );
        let flags = Flags {
            listen: Some("127.0.0.1:9002".into()),
            api_token: Some("0123456789abcdef".into()),
            rtmp_listen: Some("off".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&f), &e, &flags).unwrap();
        assert_eq!(c.listen.port(), 9002);
        assert_eq!(c.api_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.rtmp_addr(), None);
        assert_eq!(c.srt_addr().map(|a| a.port()), Some(9000));
        assert_eq!(c.public_host(), "127.0.0.1");
    }

    #[test]
    fn data_dir_defaults_and_overrides() {
        let c = Config::load(None, &env(&[]), &Flags::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("showmix-data"));
        let e = env(&[("SHOWMIX_DATA_DIR", "/srv/showmix")]);
        let c = Config::load(None, &e, &Flags::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/showmix"));
        let flags = Flags {
            data_dir: Some("/var/lib/showmix".into()),
            ..Default::default()
        };
        let c = Config::load(None, &e, &flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/showmix"));
        let err = Config::load(None, &env(&[("SHOWMIX_DATA_DIR", "")]), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_dir: must not be empty"), "{err}");
    }

    #[test]
    fn every_invalid_value_at_once() {
        let e = env(&[
            ("SHOWMIX_MAX_ROOMS", "0"),
            ("SHOWMIX_MAX_BODY_BYTES", "lots"),
            ("SHOWMIX_REQUEST_TIMEOUT_MS", "5"),
            ("SHOWMIX_LISTEN", "nowhere"),
        ]);
        let err = Config::load(None, &e, &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_rooms: 0 is out of range (allowed 1..=1000)"),
            "{err}"
        );
        assert!(
            err.contains("SHOWMIX_MAX_BODY_BYTES: \"lots\" is not a whole number"),
            "{err}"
        );
        assert!(
            err.contains("request_timeout_ms: 5 is out of range"),
            "{err}"
        );
        assert!(
            err.contains("listen: \"nowhere\" is not an address"),
            "{err}"
        );
    }

    #[test]
    fn public_address_needs_a_token() {
        let flags = Flags {
            listen: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        let err = Config::load(None, &env(&[]), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api_token: is required to listen on 0.0.0.0:8080"),
            "{err}"
        );
        let flags = Flags {
            listen: Some("0.0.0.0:8080".into()),
            api_token: Some("short".into()),
            srt_listen: Some("nowhere:1".into()),
            ..Default::default()
        };
        let err = Config::load(None, &env(&[]), &flags)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be 16..=256"), "{err}");
        assert!(
            err.contains("srt_listen: \"nowhere:1\" is not an address"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&f), &env(&[]), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `listne`"), "{err}");
    }

    #[test]
    fn playback_token_settings_are_checked() {
        let c = Config {
            playback_tokens: "sometimes".into(),
            playback_secret: Some("short".into()),
            playback_token_ttl_s: 5,
            ..Config::default()
        };
        let mut k = Checker::new();
        c.check(&mut k);
        let err = k.finish().unwrap_err().to_string();
        assert!(
            err.contains("playback_tokens: \"sometimes\" is not allowed (allowed: auto, on, off)"),
            "{err}"
        );
        assert!(
            err.contains("playback_secret: must be 16..=256 characters"),
            "{err}"
        );
        assert!(
            err.contains("playback_token_ttl_s: 5 is out of range"),
            "{err}"
        );
        // auto: required off loopback only.
        assert!(!Config::default().playback_tokens_required());
        let public = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(public.playback_tokens_required());
    }
}
