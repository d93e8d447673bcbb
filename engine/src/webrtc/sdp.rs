//! Reading a WebRTC offer before GStreamer sees it: is it an SDP offer at all, what media does
//! it carry, which of its payload types showmix takes, and the ICE candidates of a trickle
//! fragment. Plain text processing (RFC 8866 lines, RFC 8829 conventions), no GStreamer, so
//! every refusal has a precise message and a unit test.
//!
//! What showmix takes:
//! - from a WHIP publisher: H.264 with packetization-mode 1 (constrained baseline, baseline,
//!   main or high) or VP8 for video, Opus for audio; video is required (a seat shows a picture);
//! - for a WHEP viewer: H.264 with packetization-mode 1 in the profile the room's encoder
//!   produces, and Opus.

use std::fmt;

/// The most lines an offer may have: browsers send 100 to 200.
const MAX_LINES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not an SDP offer, or one missing what WebRTC needs (HTTP 400).
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// Well-formed, but no audio or video showmix could use at all (HTTP 400).
    #[error("the offer has no usable media: {0}")]
    NoMedia(String),
    /// Media, but none in a codec showmix takes (HTTP 406).
    #[error("{0}")]
    Unsupported(String),
}

impl SdpError {
    pub fn http_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) | SdpError::NoMedia(_) => 400,
            SdpError::Unsupported(_) => 406,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    /// `application` (data channels) and anything else.
    Other,
}

/// Which way media flows, from the offerer's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn offerer_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    pub fn offerer_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One `a=rtpmap` entry with its `a=fmtp` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    pub pt: u8,
    /// As written (`H264`, `VP8`, `opus`, ...).
    pub name: String,
    pub clock_rate: u32,
    /// Channels for audio (`opus/48000/2`).
    pub params: Option<String>,
    /// `fmtp` parameters in order.
    pub fmtp: Vec<(String, String)>,
}

impl Codec {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn fmtp(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// H.264's profile from `profile-level-id` (RFC 6184; absent means constrained baseline
    /// level 1, 42000a).
    pub fn h264_profile(&self) -> Option<H264Profile> {
        if !self.is("H264") {
            return None;
        }
        H264Profile::from_profile_level_id(self.fmtp("profile-level-id").unwrap_or("42000a"))
    }

    fn packetization_mode(&self) -> &str {
        self.fmtp("packetization-mode").unwrap_or("0")
    }
}

/// The H.264 profiles WebRTC peers offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    High,
    /// Anything else (high 10, 4:2:2, 4:4:4 ...): not taken.
    Other,
}

impl H264Profile {
    /// From the 6 hex digits of `profile-level-id` (profile_idc, constraint flags, level).
    pub fn from_profile_level_id(id: &str) -> Option<H264Profile> {
        if id.len() != 6 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let idc = u8::from_str_radix(&id[0..2], 16).ok()?;
        let iop = u8::from_str_radix(&id[2..4], 16).ok()?;
        Some(match idc {
            // constraint_set1_flag (0x40) makes baseline constrained baseline.
            66 if iop & 0x40 != 0 => H264Profile::ConstrainedBaseline,
            66 => H264Profile::Baseline,
            // Main with constraint_set1 is also constrained baseline-compatible; main it is.
            77 => H264Profile::Main,
            100 => H264Profile::High,
            _ => H264Profile::Other,
        })
    }

    /// The GStreamer caps name of the profile (`h264parse`'s `profile` field).
    pub fn from_caps_name(name: &str) -> H264Profile {
        match name {
            "constrained-baseline" => H264Profile::ConstrainedBaseline,
            "baseline" => H264Profile::Baseline,
            "main" => H264Profile::Main,
            "high" => H264Profile::High,
            _ => H264Profile::Other,
        }
    }
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    pub kind: Kind,
    /// Port 0 without `a=bundle-only`: the offerer rejects this section.
    pub port: u16,
    /// `a=bundle-only` (RFC 8843): port 0, but in use on the bundle's transport.
    pub bundle_only: bool,
    pub proto: String,
    pub mid: Option<String>,
    pub direction: Direction,
    pub codecs: Vec<Codec>,
}

impl Media {
    /// Not rejected: a port, or bundled (`a=bundle-only`).
    pub fn in_use(&self) -> bool {
        self.port != 0 || self.bundle_only
    }
}

/// What an offer says, as far as showmix needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub media: Vec<Media>,
    /// The first ICE username fragment (a trickle PATCH with another asks for an ICE restart).
    pub ice_ufrag: Option<String>,
}

/// A candidate line to pass to the ICE agent: the m-line index and `candidate:…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub mline: u32,
    pub line: String,
}

fn malformed(m: impl Into<String>) -> SdpError {
    SdpError::Malformed(m.into())
}

impl Offer {
    /// Parses and checks an offer: `v=0` first, at least one `m=` section, DTLS-SRTP
    /// (`UDP/TLS/RTP/SAVPF`) for every audio/video section, ICE credentials and a DTLS
    /// fingerprint (session or media level).
    pub fn parse(text: &str) -> Result<Offer, SdpError> {
        let lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return Err(malformed("the body is empty (expected an SDP offer)"));
        }
        if lines.len() > MAX_LINES {
            return Err(malformed(format!(
                "{} lines (at most {MAX_LINES})",
                lines.len()
            )));
        }
        if lines[0] != "v=0" {
            return Err(malformed(format!(
                "the first line is {:?}, not \"v=0\"",
                truncate(lines[0])
            )));
        }
        let mut media: Vec<Media> = Vec::new();
        let (mut session_ice, mut session_fingerprint) = (false, false);
        let mut session_dir = None;
        let mut media_ice: Vec<bool> = Vec::new();
        let mut media_fp: Vec<bool> = Vec::new();
        let mut media_dir: Vec<Option<Direction>> = Vec::new();
        let mut ice_ufrag = None;
        for (n, line) in lines.iter().enumerate() {
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(malformed(format!(
                    "line {} is not <type>=<value>: {:?}",
                    n + 1,
                    truncate(line)
                )));
            }
            let value = &line[2..];
            match bytes[0] {
                b'm' => {
                    media.push(parse_m_line(value).map_err(|e| {
                        malformed(format!("line {} ({:?}): {e}", n + 1, truncate(line)))
                    })?);
                    media_ice.push(false);
                    media_fp.push(false);
                    media_dir.push(None);
                }
                b'a' => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    if name == "ice-ufrag" && ice_ufrag.is_none() {
                        ice_ufrag = Some(arg.trim().to_owned());
                    }
                    let dir = match name {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    let i = media.len().wrapping_sub(1);
                    let Some(m) = media.last_mut() else {
                        match name {
                            "ice-ufrag" | "ice-pwd" => session_ice = true,
                            "fingerprint" => session_fingerprint = true,
                            _ => {}
                        }
                        if dir.is_some() {
                            session_dir = dir;
                        }
                        continue;
                    };
                    if let Some(d) = dir {
                        media_dir[i] = Some(d);
                    }
                    match name {
                        "ice-ufrag" | "ice-pwd" => media_ice[i] = true,
                        "fingerprint" => media_fp[i] = true,
                        "mid" => m.mid = Some(arg.to_owned()),
                        "bundle-only" => m.bundle_only = true,
                        "rtpmap" => {
                            let c = parse_rtpmap(arg).map_err(|e| {
                                malformed(format!("line {} ({:?}): {e}", n + 1, truncate(line)))
                            })?;
                            if let Some(old) = m.codecs.iter_mut().find(|x| x.pt == c.pt) {
                                old.name = c.name;
                                old.clock_rate = c.clock_rate;
                                old.params = c.params;
                            } else {
                                m.codecs.push(c);
                            }
                        }
                        "fmtp" => {
                            let (pt, params) = parse_fmtp(arg).map_err(|e| {
                                malformed(format!("line {} ({:?}): {e}", n + 1, truncate(line)))
                            })?;
                            if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                                c.fmtp = params;
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if media.is_empty() {
            return Err(SdpError::NoMedia("it has no m= section".into()));
        }
        for (i, m) in media.iter_mut().enumerate() {
            m.direction = media_dir[i].or(session_dir).unwrap_or(Direction::SendRecv);
            if m.kind == Kind::Other || !m.in_use() {
                continue;
            }
            if !m.proto.contains("SAVPF") {
                return Err(malformed(format!(
                    "m-line {i} uses {:?}; WebRTC needs UDP/TLS/RTP/SAVPF (DTLS-SRTP)",
                    m.proto
                )));
            }
            if !(session_ice || media_ice[i]) {
                return Err(malformed(format!(
                    "m-line {i} has no ICE credentials (a=ice-ufrag / a=ice-pwd)"
                )));
            }
            if !(session_fingerprint || media_fp[i]) {
                return Err(malformed(format!(
                    "m-line {i} has no DTLS fingerprint (a=fingerprint)"
                )));
            }
        }
        Ok(Offer { media, ice_ufrag })
    }

    /// The audio and video sections in use.
    fn av(&self) -> impl Iterator<Item = (usize, &Media)> {
        self.media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind != Kind::Other && m.in_use())
    }

    fn codecs_offered(&self, kind: Kind) -> String {
        let mut names: Vec<String> = Vec::new();
        for (_, m) in self.av().filter(|(_, m)| m.kind == kind) {
            for c in &m.codecs {
                if [
                    "rtx",
                    "red",
                    "ulpfec",
                    "flexfec-03",
                    "CN",
                    "telephone-event",
                ]
                .iter()
                .any(|x| c.is(x))
                {
                    continue;
                }
                let d = describe(c);
                if !names.contains(&d) {
                    names.push(d);
                }
            }
        }
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

fn describe(c: &Codec) -> String {
    match c.h264_profile() {
        Some(p) => format!(
            "H264 {} packetization-mode={}",
            match p {
                H264Profile::ConstrainedBaseline => "constrained-baseline",
                H264Profile::Baseline => "baseline",
                H264Profile::Main => "main",
                H264Profile::High => "high",
                H264Profile::Other => "other-profile",
            },
            c.packetization_mode()
        ),
        None => c.name.clone(),
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

fn parse_m_line(v: &str) -> Result<Media, String> {
    let mut it = v.split(' ');
    let kind = match it.next() {
        Some("audio") => Kind::Audio,
        Some("video") => Kind::Video,
        Some(k) if !k.is_empty() => Kind::Other,
        _ => return Err("no media type".into()),
    };
    let port = it
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("no port number")?;
    let proto = it.next().ok_or("no transport protocol")?.to_owned();
    let mut codecs = Vec::new();
    if kind != Kind::Other {
        for f in it {
            let pt = f
                .parse::<u8>()
                .ok()
                .filter(|p| *p < 128)
                .ok_or_else(|| format!("payload type {f:?} is not a number 0..=127"))?;
            codecs.push(Codec {
                pt,
                name: String::new(),
                clock_rate: 0,
                params: None,
                fmtp: Vec::new(),
            });
        }
    }
    Ok(Media {
        kind,
        port,
        bundle_only: false,
        proto,
        mid: None,
        direction: Direction::SendRecv,
        codecs,
    })
}

/// `<pt> <name>/<clock>[/<params>]`
fn parse_rtpmap(arg: &str) -> Result<Codec, String> {
    let (pt, enc) = arg.split_once(' ').ok_or("rtpmap needs <pt> <encoding>")?;
    let pt = pt
        .parse::<u8>()
        .ok()
        .filter(|p| *p < 128)
        .ok_or("rtpmap payload type is not a number 0..=127")?;
    let mut parts = enc.trim().split('/');
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err("rtpmap has no encoding name".into());
    }
    let clock_rate = parts
        .next()
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or("rtpmap has no clock rate")?;
    Ok(Codec {
        pt,
        name: name.to_owned(),
        clock_rate,
        params: parts.next().map(str::to_owned),
        fmtp: Vec::new(),
    })
}

fn parse_fmtp(arg: &str) -> Result<(u8, Vec<(String, String)>), String> {
    let (pt, params) = arg.split_once(' ').unwrap_or((arg, ""));
    let pt = pt
        .parse::<u8>()
        .map_err(|_| "fmtp payload type is not a number")?;
    let params = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    Ok((pt, params))
}

/// What showmix answers for one m-line: the payload type it takes, or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub mline: usize,
    pub kind: Kind,
    pub codec: Codec,
}

/// The codecs a WHIP publisher may send.
pub const WHIP_SUPPORTED: &str = "video: H264 (constrained-baseline, baseline, main or high; packetization-mode=1) or VP8; \
     audio: opus";

/// Picks what a publisher sends: the first video m-line the publisher sends on, with H.264
/// (constrained baseline first, then baseline, main, high; packetization-mode 1) or else VP8,
/// and the first audio m-line with Opus. Other sections are refused in the answer.
pub fn choose_whip(offer: &Offer) -> Result<Vec<Choice>, SdpError> {
    let sending: Vec<(usize, &Media)> = offer
        .av()
        .filter(|(_, m)| m.direction.offerer_sends())
        .collect();
    if !sending.iter().any(|(_, m)| m.kind == Kind::Video) {
        return Err(SdpError::NoMedia(
            "a WHIP publisher must send video (no video m-line with sendonly or sendrecv)".into(),
        ));
    }
    let mut out = Vec::new();
    if let Some((i, m)) = sending.iter().find(|(_, m)| m.kind == Kind::Video) {
        let rank = |c: &Codec| -> Option<u8> {
            match c.h264_profile() {
                Some(p) if c.packetization_mode() == "1" => match p {
                    H264Profile::ConstrainedBaseline => Some(0),
                    H264Profile::Baseline => Some(1),
                    H264Profile::Main => Some(2),
                    H264Profile::High => Some(3),
                    H264Profile::Other => None,
                },
                _ if c.is("VP8") && c.clock_rate == 90000 => Some(4),
                _ => None,
            }
        };
        let best = m
            .codecs
            .iter()
            .filter_map(|c| rank(c).map(|r| (r, c)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| {
                SdpError::Unsupported(format!(
                    "no supported video codec in the offer (offered: {}; supported: {WHIP_SUPPORTED})",
                    offer.codecs_offered(Kind::Video)
                ))
            })?;
        out.push(Choice {
            mline: *i,
            kind: Kind::Video,
            codec: best,
        });
    }
    if let Some((i, m)) = sending.iter().find(|(_, m)| m.kind == Kind::Audio)
        && let Some(c) = m
            .codecs
            .iter()
            .find(|c| c.is("opus") && c.clock_rate == 48000)
    {
        out.push(Choice {
            mline: *i,
            kind: Kind::Audio,
            codec: c.clone(),
        });
    }
    Ok(out)
}

/// Picks what a viewer receives: H.264 packetization-mode 1 in `profile` (the room encoder's)
/// and Opus when the viewer receives audio. A viewer that does not offer that profile gets the
/// stream on its closest H.264 payload type (High, then Main, then constrained baseline):
/// Chromium offers no High, and browsers decode H.264 in software whatever the profile says.
pub fn choose_whep(offer: &Offer, profile: H264Profile) -> Result<Vec<Choice>, SdpError> {
    let receiving: Vec<(usize, &Media)> = offer
        .av()
        .filter(|(_, m)| m.direction.offerer_receives())
        .collect();
    if !receiving.iter().any(|(_, m)| m.kind == Kind::Video) {
        return Err(SdpError::NoMedia(
            "a WHEP viewer must receive video (no video m-line with recvonly or sendrecv)".into(),
        ));
    }
    let mut out = Vec::new();
    if let Some((i, m)) = receiving.iter().find(|(_, m)| m.kind == Kind::Video) {
        let h264: Vec<&Codec> = m
            .codecs
            .iter()
            .filter(|c| c.is("H264") && c.packetization_mode() == "1")
            .collect();
        let by = |p: H264Profile| h264.iter().find(|c| c.h264_profile() == Some(p)).copied();
        let fallback = [
            H264Profile::High,
            H264Profile::Main,
            H264Profile::ConstrainedBaseline,
            H264Profile::Baseline,
        ];
        let best = by(profile)
            .or_else(|| fallback.iter().find_map(|p| by(*p)))
            .cloned()
            .ok_or_else(|| {
                SdpError::Unsupported(format!(
                    "the viewer offers no H264 with packetization-mode=1 (offered: {}; supported: \
                     H264 packetization-mode=1 and opus)",
                    offer.codecs_offered(Kind::Video)
                ))
            })?;
        out.push(Choice {
            mline: *i,
            kind: Kind::Video,
            codec: best,
        });
    }
    if let Some((i, m)) = receiving.iter().find(|(_, m)| m.kind == Kind::Audio)
        && let Some(c) = m
            .codecs
            .iter()
            .find(|c| c.is("opus") && c.clock_rate == 48000)
    {
        out.push(Choice {
            mline: *i,
            kind: Kind::Audio,
            codec: c.clone(),
        });
    }
    Ok(out)
}

/// The candidates of a trickle-ICE fragment (`application/trickle-ice-sdpfrag`, RFC 8840):
/// `a=candidate` lines under `a=mid`/`m=` sections, mapped to m-line indexes of `offer` (by
/// mid, else by section order). Returns the candidates and whether the fragment asks for an
/// ICE restart (credentials other than `ufrag`).
pub fn parse_trickle(
    fragment: &str,
    offer: &Offer,
    ufrag: Option<&str>,
) -> Result<(Vec<Candidate>, bool), SdpError> {
    let mut mline: Option<u32> = None;
    let mut sections = 0u32;
    let mut out = Vec::new();
    let mut restart = false;
    for line in fragment.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            mline = Some(sections);
            sections += 1;
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            mline = offer
                .media
                .iter()
                .position(|m| m.mid.as_deref() == Some(mid))
                .map(|i| i as u32)
                .or(mline);
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                out.push(Candidate {
                    mline: mline.unwrap_or(0),
                    line: c.to_owned(),
                });
            } else if let Some(u) = c.strip_prefix("ice-ufrag:")
                && ufrag.is_some_and(|known| known != u)
            {
                restart = true;
            }
        } else if !line.starts_with("a=") {
            return Err(malformed(format!(
                "trickle fragment line {:?} is not an a= or m= line",
                truncate(line)
            )));
        }
    }
    Ok((out, restart))
}

/// Drops `a=candidate` lines whose address is not in `allowed` (empty: keep all). libnice
/// binds to the configured addresses already; this keeps a stray one out of answers.
pub fn keep_candidates(sdp: &str, allowed: &[std::net::IpAddr]) -> String {
    if allowed.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let t = line.trim_end();
        if let Some(c) = t.strip_prefix("a=candidate:") {
            // foundation component transport priority address port typ ...
            let addr = c
                .split(' ')
                .nth(4)
                .and_then(|a| a.parse::<std::net::IpAddr>().ok());
            if addr.is_some_and(|a| !allowed.contains(&a)) {
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Other => "other",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chromium 156 offer (trimmed to the lines that matter), sendonly like a WHIP client.
    pub(crate) fn chrome_offer(dir: &str) -> String {
        format!(
            "v=0\r\n\
             o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
             s=-\r\n\
             t=0 0\r\n\
             a=group:BUNDLE 0 1\r\n\
             a=msid-semantic: WMS\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\n\
             a=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
             a=fingerprint:sha-256 00:11\r\n\
             a=setup:actpass\r\n\
             a=mid:0\r\n\
             a={dir}\r\n\
             a=rtcp-mux\r\n\
             a=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10;useinbandfec=1\r\n\
             a=rtpmap:63 red/48000/2\r\n\
             a=rtpmap:9 G722/8000\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 116 41\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\n\
             a=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
             a=fingerprint:sha-256 00:11\r\n\
             a=setup:actpass\r\n\
             a=mid:1\r\n\
             a={dir}\r\n\
             a=rtpmap:96 VP8/90000\r\n\
             a=rtpmap:97 rtx/90000\r\n\
             a=fmtp:97 apt=96\r\n\
             a=rtpmap:102 H264/90000\r\n\
             a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
             a=rtpmap:103 H264/90000\r\n\
             a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
             a=rtpmap:108 H264/90000\r\n\
             a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
             a=rtpmap:116 H264/90000\r\n\
             a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
             a=rtpmap:41 H264/90000\r\n\
             a=fmtp:41 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n"
        )
    }

    #[test]
    fn reads_a_browser_offer() {
        let o = Offer::parse(&chrome_offer("sendonly")).unwrap();
        assert_eq!(o.media.len(), 2);
        assert_eq!(o.media[0].kind, Kind::Audio);
        assert_eq!(o.media[1].mid.as_deref(), Some("1"));
        assert_eq!(o.media[1].direction, Direction::SendOnly);
        let h = o.media[1].codecs.iter().find(|c| c.pt == 116).unwrap();
        assert_eq!(h.h264_profile(), Some(H264Profile::Main));
        assert_eq!(h.fmtp("packetization-mode"), Some("1"));
    }

    #[test]
    fn whip_takes_constrained_baseline_and_opus() {
        let o = Offer::parse(&chrome_offer("sendonly")).unwrap();
        let c = choose_whip(&o).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].kind, c[0].codec.pt), (Kind::Video, 108));
        assert_eq!(
            (c[1].kind, c[1].codec.pt, c[1].mline),
            (Kind::Audio, 111, 0)
        );
    }

    #[test]
    fn whip_falls_back_to_vp8_and_refuses_the_rest() {
        let vp8_only = chrome_offer("sendonly")
            .lines()
            .filter(|l| {
                !l.contains("H264")
                    && !l.contains("fmtp:10")
                    && !l.contains("fmtp:116")
                    && !l.contains("fmtp:41")
            })
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .replace("96 97 102 103 108 116 41", "96 97");
        let c = choose_whip(&Offer::parse(&vp8_only).unwrap()).unwrap();
        assert!(c[0].codec.is("VP8"));
        let av1 = vp8_only
            .replace("96 97", "45")
            .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:45 AV1/90000");
        let e = choose_whip(&Offer::parse(&av1).unwrap()).unwrap_err();
        assert_eq!(e.http_status(), 406);
        let msg = e.to_string();
        assert!(
            msg.contains("AV1") && msg.contains("VP8") && msg.contains("opus"),
            "{msg}"
        );
    }

    #[test]
    fn whip_needs_video_sent_and_whep_needs_video_received() {
        let o = Offer::parse(&chrome_offer("recvonly")).unwrap();
        let e = choose_whip(&o).unwrap_err();
        assert!(matches!(e, SdpError::NoMedia(_)), "{e}");
        let c = choose_whep(&o, H264Profile::High).unwrap();
        // No High offered: Main carries the High stream.
        assert_eq!(c[0].codec.pt, 116);
        let c = choose_whep(&o, H264Profile::ConstrainedBaseline).unwrap();
        assert_eq!(c[0].codec.pt, 108);
        let o = Offer::parse(&chrome_offer("sendonly")).unwrap();
        assert!(matches!(
            choose_whep(&o, H264Profile::Main),
            Err(SdpError::NoMedia(_))
        ));
    }

    #[test]
    fn bundle_only_sections_are_in_use() {
        // webrtcbin (max-bundle) offers its second section on port 0 with a=bundle-only.
        let o = chrome_offer("recvonly").replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "m=video 0 UDP/TLS/RTP/SAVPF 96",
        );
        let o = o.replacen("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n", 1);
        let c = choose_whep(&Offer::parse(&o).unwrap(), H264Profile::Main).unwrap();
        assert_eq!(c.len(), 2);
        let rejected = chrome_offer("recvonly").replace("m=audio 9", "m=audio 0");
        let c = choose_whep(&Offer::parse(&rejected).unwrap(), H264Profile::Main).unwrap();
        assert_eq!(
            c.len(),
            1,
            "a port-0 section without bundle-only is rejected"
        );
    }

    #[test]
    fn garbage_and_incomplete_offers_are_malformed() {
        for bad in ["", "hello", "v=1\r\n", "v=0\r\nthis is not sdp\r\n"] {
            let e = Offer::parse(bad).unwrap_err();
            assert_eq!(e.http_status(), 400, "{bad:?}: {e}");
        }
        let e = Offer::parse("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n").unwrap_err();
        assert!(matches!(e, SdpError::NoMedia(_)));
        let no_ice = chrome_offer("sendonly")
            .replace("a=ice-ufrag:abcd\r\n", "")
            .replace("a=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n", "");
        assert!(
            Offer::parse(&no_ice)
                .unwrap_err()
                .to_string()
                .contains("ICE")
        );
        let no_fp = chrome_offer("sendonly").replace("a=fingerprint:sha-256 00:11\r\n", "");
        assert!(
            Offer::parse(&no_fp)
                .unwrap_err()
                .to_string()
                .contains("fingerprint")
        );
        let plain_rtp = chrome_offer("sendonly").replace("UDP/TLS/RTP/SAVPF", "RTP/AVP");
        assert!(
            Offer::parse(&plain_rtp)
                .unwrap_err()
                .to_string()
                .contains("DTLS")
        );
        let bad_pt = chrome_offer("sendonly").replace("96 97 102", "96 abc 102");
        assert!(Offer::parse(&bad_pt).is_err());
        let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_LINES + 1));
        assert!(Offer::parse(&huge).is_err());
    }

    #[test]
    fn trickle_fragments_map_to_mlines() {
        let o = Offer::parse(&chrome_offer("sendonly")).unwrap();
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n\
                    a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host\r\na=end-of-candidates\r\n";
        let (c, restart) = parse_trickle(frag, &o, Some("abcd")).unwrap();
        assert!(!restart);
        assert_eq!(
            c,
            vec![Candidate {
                mline: 1,
                line: "candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host".into()
            }]
        );
        let (_, restart) = parse_trickle("a=ice-ufrag:new\r\n", &o, Some("abcd")).unwrap();
        assert!(restart);
        assert!(parse_trickle("garbage\r\n", &o, None).is_err());
    }

    #[test]
    fn candidates_outside_the_allowed_addresses_are_dropped() {
        let sdp = "a=mid:0\r\na=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host\r\n\
                   a=candidate:2 1 UDP 2015363327 192.0.2.2 40001 typ host\r\n";
        let kept = keep_candidates(sdp, &["127.0.0.1".parse().unwrap()]);
        assert!(kept.contains("127.0.0.1") && !kept.contains("192.0.2.2"));
        assert_eq!(keep_candidates(sdp, &[]), sdp);
    }

    #[test]
    fn profile_level_ids() {
        use H264Profile::*;
        assert_eq!(
            H264Profile::from_profile_level_id("42e01f"),
            Some(ConstrainedBaseline)
        );
        assert_eq!(H264Profile::from_profile_level_id("42001f"), Some(Baseline));
        assert_eq!(H264Profile::from_profile_level_id("4d001f"), Some(Main));
        assert_eq!(H264Profile::from_profile_level_id("640c1f"), Some(High));
        assert_eq!(H264Profile::from_profile_level_id("f4001f"), Some(Other));
        assert_eq!(H264Profile::from_profile_level_id("zz"), None);
    }
}
