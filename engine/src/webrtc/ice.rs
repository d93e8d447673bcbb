//! ICE settings as operators write them: STUN/TURN servers (`ice_servers`), the UDP port range
//! WebRTC media uses (`webrtc_udp_ports`, for the firewall), and the addresses host candidates
//! are gathered on (`webrtc_addresses`). Parsing and validation only; `peer` applies them.

use std::net::IpAddr;
use std::time::Duration;

/// A STUN or TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    pub kind: ServerKind,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub credential: Option<String>,
    /// TURN: `udp` or `tcp` (`?transport=`).
    pub transport: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Stun,
    Turn,
    Turns,
}

impl IceServer {
    /// `stun:host[:port]`, `turn:user:password@host[:port][?transport=udp|tcp]`, `turns:…`
    /// (RFC 7064/7065 forms; `//` after the scheme is accepted too).
    pub fn parse(url: &str) -> Result<IceServer, String> {
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| format!("{url:?} has no scheme (allowed: stun:, turn:, turns:)"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "stun" => ServerKind::Stun,
            "turn" => ServerKind::Turn,
            "turns" => ServerKind::Turns,
            s => {
                return Err(format!(
                    "{url:?}: scheme {s:?} is not allowed (allowed: stun, turn, turns)"
                ));
            }
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, credential) = match userinfo {
            Some(u) => {
                let (a, b) = u
                    .split_once(':')
                    .ok_or_else(|| format!("{url:?}: credentials must be user:password@"))?;
                (Some(a.to_owned()), Some(b.to_owned()))
            }
            None => (None, None),
        };
        if kind != ServerKind::Stun && username.is_none() {
            return Err(format!("{url:?}: a TURN server needs user:password@"));
        }
        let default_port = if kind == ServerKind::Turns {
            5349
        } else {
            3478
        };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url:?}: port {p:?} is not 1..=65535"))
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            // [v6]:port or [v6]
            let (h, rest) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            match rest.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None if rest.is_empty() => (h, default_port),
                None => return Err(format!("{url:?}: junk after the host")),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (hostport, default_port),
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        {
            return Err(format!("{url:?}: {host:?} is not a host name or address"));
        }
        let transport = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("transport="))
            .map(str::to_ascii_lowercase);
        if let Some(t) = &transport
            && t != "udp"
            && t != "tcp"
        {
            return Err(format!(
                "{url:?}: transport {t:?} is not allowed (allowed: udp, tcp)"
            ));
        }
        Ok(IceServer {
            kind,
            host: host.to_owned(),
            port,
            username,
            credential,
            transport,
        })
    }

    /// The URI webrtcbin takes (`stun://host:port`, `turn://user:pass@host:port`).
    pub fn gst_uri(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.kind {
            ServerKind::Stun => format!("stun://{host}:{}", self.port),
            ServerKind::Turn | ServerKind::Turns => {
                let scheme = if self.kind == ServerKind::Turn {
                    "turn"
                } else {
                    "turns"
                };
                let mut u = format!(
                    "{scheme}://{}:{}@{host}:{}",
                    uri_escape(self.username.as_deref().unwrap_or_default()),
                    uri_escape(self.credential.as_deref().unwrap_or_default()),
                    self.port
                );
                if let Some(t) = &self.transport {
                    u.push_str("?transport=");
                    u.push_str(t);
                }
                u
            }
        }
    }

    /// The `Link` header value RFC 9725 §4.6 describes, for WHIP/WHEP clients.
    pub fn link_header(&self) -> String {
        let scheme = match self.kind {
            ServerKind::Stun => "stun",
            ServerKind::Turn => "turn",
            ServerKind::Turns => "turns",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut v = format!("<{scheme}:{host}:{}", self.port);
        if let Some(t) = &self.transport {
            v.push_str("?transport=");
            v.push_str(t);
        }
        v.push_str(">; rel=\"ice-server\"");
        if let (Some(u), Some(c)) = (&self.username, &self.credential) {
            v.push_str(&format!(
                "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                quote_escape(u),
                quote_escape(c)
            ));
        }
        v
    }
}

fn uri_escape(s: &str) -> String {
    crate::ingest::keys::percent_encode(s)
}

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Parses `min-max` (`40000-40199`).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a range (allowed: <min>-<max>, e.g. 40000-40199)"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p >= 1024)
            .ok_or_else(|| format!("{v:?} is not a port 1024..=65535"))
    };
    let (min, max) = (p(a)?, p(b)?);
    if min > max {
        return Err(format!("{s:?}: the first port is above the last"));
    }
    Ok((min, max))
}

/// What every WebRTC peer of the process is set up with.
#[derive(Clone, Debug, PartialEq)]
pub struct IceConfig {
    pub servers: Vec<IceServer>,
    /// Local UDP ports media may use; `None`: any.
    pub udp_ports: Option<(u16, u16)>,
    /// Addresses host candidates are gathered on; empty: every interface but loopback (libnice's
    /// default).
    pub addresses: Vec<IpAddr>,
    /// A session whose ICE has not connected by then is torn down.
    pub connect_timeout: Duration,
    /// How long a publisher's jitter buffer waits for late or retransmitted packets. In-order
    /// packets pass at once; this bounds the wait on a gap.
    pub jitter_buffer: Duration,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            udp_ports: None,
            addresses: vec![IpAddr::from([127, 0, 0, 1])],
            connect_timeout: Duration::from_secs(10),
            jitter_buffer: Duration::from_millis(50),
        }
    }
}

impl IceConfig {
    /// `Link` headers for clients (RFC 9725 §4.6).
    pub fn link_headers(&self) -> Vec<String> {
        self.servers.iter().map(IceServer::link_header).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_urls() {
        let s = IceServer::parse("stun:stun.example.net").unwrap();
        assert_eq!((s.kind, s.port), (ServerKind::Stun, 3478));
        assert_eq!(s.gst_uri(), "stun://stun.example.net:3478");
        assert_eq!(
            s.link_header(),
            "<stun:stun.example.net:3478>; rel=\"ice-server\""
        );
        let t = IceServer::parse("turn://u:p@ss@turn.example.net:3479?transport=udp").unwrap();
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.credential.as_deref(), Some("p@ss"));
        assert_eq!(t.port, 3479);
        assert_eq!(
            t.gst_uri(),
            "turn://u:p%40ss@turn.example.net:3479?transport=udp"
        );
        assert!(t.link_header().contains("credential=\"p@ss\""));
        assert_eq!(IceServer::parse("turns:a:b@[::1]").unwrap().port, 5349);
    }

    #[test]
    fn bad_servers_say_what_is_allowed() {
        for (bad, says) in [
            ("http://x", "allowed: stun, turn, turns"),
            ("turn:host", "needs user:password"),
            ("stun:host:0", "1..=65535"),
            ("stun:host:99999", "1..=65535"),
            ("stun:", "not a host"),
            ("turn:u:p@h?transport=sctp", "udp, tcp"),
            ("nothing", "no scheme"),
        ] {
            let e = IceServer::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("40000-40199"), Ok((40000, 40199)));
        assert!(parse_port_range("40199-40000").is_err());
        assert!(parse_port_range("80-90").unwrap_err().contains("1024"));
        assert!(parse_port_range("40000").is_err());
    }
}
