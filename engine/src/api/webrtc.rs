//! WHIP and WHEP signalling over showmix's own HTTP server (RFC 9725 and the WHEP draft):
//!
//! | path | methods |
//! |---|---|
//! | `/whip/{room}/{seat}` | `POST` an SDP offer (`Authorization: Bearer <seat key>`), `OPTIONS` |
//! | `/whip/{room}/{seat}/{session}` | `DELETE`, `PATCH` (trickle ICE), `OPTIONS` |
//! | `/live/{room}[~token]/whep`, `/live/{room}[~token]/{rung}/whep` | `POST` an SDP offer, `OPTIONS` |
//! | `…/whep/{session}` | `DELETE`, `PATCH`, `OPTIONS` |
//!
//! A created session answers `201` with the SDP answer (every candidate in it), `Location`
//! (the session's resource), an `ETag` and one `Link: <…>; rel="ice-server"` per configured
//! STUN/TURN server. Trickled candidates (`application/trickle-ice-sdpfrag`) get `204`; an ICE
//! restart gets `422` (publish again instead). CORS is open, with `Location`, `ETag`, `Link`
//! exposed, so browser pages on any origin can publish and play.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::http::Body;
use super::model::ApiError;
use crate::presets::validate::is_valid_name;
use crate::service::Engine;
use crate::webrtc::SessionKind;

const SDP: &str = "application/sdp";
const TRICKLE: &str = "application/trickle-ice-sdpfrag";

/// What a signalling request is about.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: SessionKind,
    /// The playback token in the path (`/live/{room}~{token}/…`).
    pub path_token: Option<String>,
    /// The session, for DELETE/PATCH.
    pub session: Option<String>,
}

fn name(kind: &str, s: &str) -> Result<String, ApiError> {
    if is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(ApiError::not_found(format!(
            "no {kind} {s:?} ({kind} ids are 1 to 64 of A-Z a-z 0-9 _ -)"
        )))
    }
}

/// Parses a WHIP or WHEP path; `None` when it is neither (an LL-HLS path, say).
pub fn parse_path(path: &str) -> Option<Result<Target, ApiError>> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["whip", room, seat, rest @ ..] if rest.len() <= 1 => Some((|| {
            Ok(Target {
                kind: SessionKind::Whip {
                    room: name("room", room)?,
                    seat: name("seat", seat)?,
                },
                path_token: None,
                session: rest.first().map(|s| name("session", s)).transpose()?,
            })
        })()),
        ["whip", ..] => Some(Err(ApiError::not_found(format!(
            "no WHIP resource {path} (publish to /whip/{{room}}/{{seat}})"
        )))),
        ["live", room, rest @ ..] => {
            let (rung, session) = match rest {
                ["whep"] => (None, None),
                ["whep", s] => (None, Some(*s)),
                [r, "whep"] => (Some(*r), None),
                [r, "whep", s] => (Some(*r), Some(*s)),
                _ => return None,
            };
            let (room, token) = crate::api::token::split_room_segment(room);
            Some((|| {
                Ok(Target {
                    kind: SessionKind::Whep {
                        room: name("room", room)?,
                        rung: rung.map(|r| name("rung", r)).transpose()?,
                    },
                    path_token: token.map(str::to_owned),
                    session: session.map(|s| name("session", s)).transpose()?,
                })
            })())
        }
        _ => None,
    }
}

fn bearer(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn content_type(headers: &hyper::HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Adds the CORS headers every signalling response carries.
pub fn cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch"),
    );
    h.insert("accept-patch", HeaderValue::from_static(TRICKLE));
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(super::http::full(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn ice_links(engine: &Engine, r: &mut Response<Body>) {
    for l in engine.webrtc.ice.link_headers() {
        if let Ok(v) = HeaderValue::from_str(&l) {
            r.headers_mut().append("link", v);
        }
    }
}

/// Serves one signalling request. `body` is read already (within the body limit).
pub async fn handle(
    engine: std::sync::Arc<Engine>,
    target: Target,
    method: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
    peer: SocketAddr,
) -> Result<Response<Body>, ApiError> {
    let path_desc = match &target.kind {
        SessionKind::Whip { .. } => "WHIP",
        SessionKind::Whep { .. } => "WHEP",
    };
    match (method, &target.session) {
        ("OPTIONS", _) => {
            let mut r = empty(StatusCode::NO_CONTENT);
            ice_links(&engine, &mut r);
            Ok(r)
        }
        ("POST", None) => {
            if content_type(headers) != SDP {
                return Err(ApiError::new(
                    415,
                    "unsupported_media_type",
                    format!(
                        "a {path_desc} offer is sent as Content-Type: {SDP} (got {:?})",
                        content_type(headers)
                    ),
                ));
            }
            let offer = String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8 text"))?;
            let token = bearer(headers);
            let answer = tokio::task::spawn_blocking(move || match &target.kind {
                SessionKind::Whip { room, seat } => {
                    engine.whip_publish(room, seat, token.as_deref(), &offer, peer)
                }
                SessionKind::Whep { room, rung } => engine.whep_play(
                    room,
                    rung.as_deref(),
                    target.path_token.as_deref().or(token.as_deref()),
                    &offer,
                ),
            });
            // The session runs whatever becomes of this request; a client that gave up is
            // cleaned up by the ICE deadline.
            let answer = answer
                .await
                .map_err(|e| ApiError::internal(format!("operation failed: {e}")))??;
            let mut r = Response::new(super::http::full(Bytes::from(answer.sdp)));
            *r.status_mut() = StatusCode::CREATED;
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(SDP));
            if let Ok(v) = HeaderValue::from_str(&answer.location) {
                h.insert("location", v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", answer.id)) {
                h.insert("etag", v);
            }
            Ok(r)
        }
        ("DELETE", Some(id)) => {
            let id = id.clone();
            let kind = target.kind.clone();
            tokio::task::spawn_blocking(move || engine.webrtc_end(&kind, &id))
                .await
                .map_err(|e| ApiError::internal(format!("operation failed: {e}")))??;
            Ok(empty(StatusCode::OK))
        }
        ("PATCH", Some(id)) => {
            if content_type(headers) != TRICKLE {
                return Err(ApiError::new(
                    415,
                    "unsupported_media_type",
                    format!("trickle ICE is sent as Content-Type: {TRICKLE}"),
                ));
            }
            if let Some(tag) = headers.get("if-match").and_then(|v| v.to_str().ok())
                && tag != "*"
                && tag.trim_matches('"') != id
            {
                return Err(ApiError::new(
                    412,
                    "precondition_failed",
                    format!("If-Match {tag} is not this session's ETag"),
                ));
            }
            let fragment = String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::bad_request("the trickle fragment is not UTF-8 text"))?;
            let id = id.clone();
            let kind = target.kind.clone();
            tokio::task::spawn_blocking(move || engine.webrtc_trickle(&kind, &id, &fragment))
                .await
                .map_err(|e| ApiError::internal(format!("operation failed: {e}")))??;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (m, None) => Err(ApiError::method_not_allowed(format!(
            "{m} is not allowed on a {path_desc} endpoint (allowed: POST, OPTIONS)"
        ))),
        (m, Some(_)) => Err(ApiError::method_not_allowed(format!(
            "{m} is not allowed on a {path_desc} session (allowed: DELETE, PATCH, OPTIONS)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_webrtc_route_parses() {
        for (_, t) in crate::api::routes::WEBRTC_ROUTES {
            let p = t
                .replace("{room}", "r1")
                .replace("{seat}", "s1")
                .replace("{rung}", "360p")
                .replace("{session}", "abc");
            let target = parse_path(&p)
                .unwrap_or_else(|| panic!("{t} is not a WebRTC path"))
                .unwrap_or_else(|e| panic!("{t}: {e:?}"));
            assert_eq!(target.session.is_some(), t.ends_with("{session}"), "{t}");
        }
    }

    #[test]
    fn paths() {
        let t = parse_path("/whip/r1/host").unwrap().unwrap();
        assert_eq!(
            t.kind,
            SessionKind::Whip {
                room: "r1".into(),
                seat: "host".into()
            }
        );
        assert_eq!(t.session, None);
        let t = parse_path("/whip/r1/host/abc").unwrap().unwrap();
        assert_eq!(t.session.as_deref(), Some("abc"));
        assert_eq!(parse_path("/whip/r1").unwrap().unwrap_err().status, 404);
        assert_eq!(
            parse_path("/whip/r1/../x").unwrap().unwrap_err().status,
            404
        );
        let t = parse_path("/live/r1~123-abc/whep").unwrap().unwrap();
        assert_eq!(t.path_token.as_deref(), Some("123-abc"));
        assert_eq!(
            t.kind,
            SessionKind::Whep {
                room: "r1".into(),
                rung: None
            }
        );
        let t = parse_path("/live/r1/360p/whep/s1").unwrap().unwrap();
        assert_eq!(t.session.as_deref(), Some("s1"));
        assert!(parse_path("/live/r1/index.m3u8").is_none());
        assert!(parse_path("/live/r1/720p/part5.1.m4s").is_none());
        assert!(parse_path("/v1/rooms").is_none());
    }
}
