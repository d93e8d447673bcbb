//! Publish targets and keys: how an RTMP URL or an SRT stream id names a seat, and the URLs the
//! API hands out.
//!
//! RTMP (OBS: "Server" + "Stream Key"):
//!   server `rtmp://<host>:1935/<room>`, stream key `<seat>?key=<key>`
//!   so the full URL is `rtmp://<host>:1935/<room>/<seat>?key=<key>`.
//! SRT (access-control syntax, the key as the session id):
//!   `srt://<host>:9000?streamid=#!::r=<room>/<seat>,m=publish,s=<key>`
//!   (`m` may be omitted; keys in any order; the stream id is percent-encoded in URLs).
//!
//! Keys are 128 random bits as 32 hex digits, compared in constant time.

use subtle::ConstantTimeEq;

use super::Refusal;
use crate::presets::validate::is_valid_name;

/// Who a publisher says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub room: String,
    pub seat: String,
    pub key: String,
}

fn checked(room: &str, seat: &str, key: &str) -> Result<Target, Refusal> {
    if !is_valid_name(room) || !is_valid_name(seat) {
        return Err(Refusal::Malformed(format!(
            "room {room:?} / seat {seat:?} are not valid ids"
        )));
    }
    if key.is_empty() || key.len() > 128 {
        return Err(Refusal::Malformed("missing publish key".into()));
    }
    Ok(Target {
        room: room.to_owned(),
        seat: seat.to_owned(),
        key: key.to_owned(),
    })
}

/// RTMP: the application is the room; the stream name is `<seat>?key=<key>`.
pub fn parse_rtmp(app: &str, name: &str) -> Result<Target, Refusal> {
    // Some clients put the query on the app ("room?x") or a trailing slash.
    let room = app.split('?').next().unwrap_or_default().trim_matches('/');
    let (seat, query) = name.split_once('?').unwrap_or((name, ""));
    let key = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .unwrap_or_default();
    checked(room, seat, key)
}

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// SRT: `#!::r=<room>/<seat>,m=publish,s=<key>`. Clients that pass the stream id on from a
/// URL without decoding it (ffmpeg 5.1) send it percent-encoded: that is accepted too.
pub fn parse_srt(stream_id: &str) -> Result<Target, Refusal> {
    let decoded;
    let stream_id = if stream_id.starts_with("%23") {
        decoded = percent_decode(stream_id)
            .ok_or_else(|| Refusal::Malformed("stream id has a bad %-escape".into()))?;
        decoded.as_str()
    } else {
        stream_id
    };
    let body = stream_id.strip_prefix("#!::").ok_or_else(|| {
        Refusal::Malformed(format!("stream id {stream_id:?} does not start with #!::"))
    })?;
    let (mut resource, mut mode, mut key) = (None, None, None);
    for kv in body.split(',') {
        match kv.split_once('=') {
            Some(("r", v)) => resource = Some(v),
            Some(("m", v)) => mode = Some(v),
            Some(("s", v)) => key = Some(v),
            _ => {}
        }
    }
    if let Some(m) = mode
        && m != "publish"
    {
        return Err(Refusal::Malformed(format!(
            "mode {m:?} (only m=publish is served)"
        )));
    }
    let (room, seat) = resource
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| Refusal::Malformed("stream id has no r=<room>/<seat>".into()))?;
    checked(room, seat, key.unwrap_or_default())
}

/// Constant-time key comparison.
pub fn key_matches(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The SRT stream id for a seat.
pub fn srt_stream_id(room: &str, seat: &str, key: &str) -> String {
    format!("#!::r={room}/{seat},m=publish,s={key}")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Complete publish URLs for a seat, usable by ffmpeg as they are.
pub fn rtmp_url(host: &str, port: u16, room: &str, seat: &str, key: &str) -> String {
    format!("rtmp://{host}:{port}/{room}/{seat}?key={key}")
}

pub fn srt_url(host: &str, port: u16, room: &str, seat: &str, key: &str) -> String {
    format!(
        "srt://{host}:{port}?streamid={}",
        percent_encode(&srt_stream_id(room, seat, key))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_targets() {
        let t = parse_rtmp("room42", "host?key=abc").unwrap();
        assert_eq!(
            (t.room.as_str(), t.seat.as_str(), t.key.as_str()),
            ("room42", "host", "abc")
        );
        assert_eq!(
            parse_rtmp("room42/", "host?x=1&key=abc").unwrap().key,
            "abc"
        );
        assert!(matches!(
            parse_rtmp("room42", "host"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_rtmp("../etc", "host?key=a"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_rtmp("r", "h/../x?key=a"),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn srt_targets() {
        let t = parse_srt("#!::r=room42/guest,m=publish,s=k1").unwrap();
        assert_eq!(
            (t.room.as_str(), t.seat.as_str(), t.key.as_str()),
            ("room42", "guest", "k1")
        );
        let t = parse_srt("#!::s=k1,u=bob,r=room42/guest").unwrap();
        assert_eq!(t.seat, "guest");
        assert!(parse_srt("#!::r=room42/guest,m=request,s=k1").is_err());
        assert!(parse_srt("room42/guest").is_err());
        assert!(parse_srt("#!::r=room42,s=k").is_err());
        assert!(parse_srt("#!::r=room42/guest").is_err(), "no key");
    }

    #[test]
    fn urls_round_trip() {
        let u = rtmp_url("127.0.0.1", 1935, "r1", "host", "k");
        assert_eq!(u, "rtmp://127.0.0.1:1935/r1/host?key=k");
        let s = srt_url("127.0.0.1", 9000, "r1", "host", "k");
        assert_eq!(
            s,
            "srt://127.0.0.1:9000?streamid=%23%21%3A%3Ar%3Dr1%2Fhost%2Cm%3Dpublish%2Cs%3Dk"
        );
        assert_eq!(
            parse_srt(&srt_stream_id("r1", "host", "k")).unwrap().key,
            "k"
        );
        let encoded = percent_encode(&srt_stream_id("r1", "host", "k"));
        assert_eq!(
            parse_srt(&encoded).unwrap().seat,
            "host",
            "percent-encoded ids are accepted"
        );
        assert!(parse_srt("%23%2").is_err());
        assert!(
            key_matches("abc", "abc") && !key_matches("abd", "abc") && !key_matches("ab", "abc")
        );
    }
}
