//! The engine's WebRTC operations: a WHIP publisher into a seat, a WHEP viewer of a room, and
//! ending or trickling into a session. Same rules as the other protocols: the seat's publish
//! key (as the Bearer token), the takeover rules of `room::publish`, the playback tokens of
//! LL-HLS; every refusal counted by reason.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::Engine;
use crate::api::model::ApiError;
use crate::ingest::Refusal;
use crate::pipeline::publisher::{Input, WebrtcVideo};
use crate::webrtc::ingest::IngestSession;
use crate::webrtc::playback::Viewer;
use crate::webrtc::sdp::{self, H264Profile, Kind, Offer, SdpError};
use crate::webrtc::sessions::LiveSession;
use crate::webrtc::{SessionKind, WebrtcError};

/// A session just created, as the HTTP layer answers it.
#[derive(Clone, Debug)]
pub struct SdpAnswer {
    pub id: String,
    pub sdp: String,
    /// The session's resource (for DELETE and PATCH), relative to the server.
    pub location: String,
}

impl From<WebrtcError> for ApiError {
    fn from(e: WebrtcError) -> Self {
        let code = match e.status {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            406 => "not_acceptable",
            409 => "conflict",
            412 => "precondition_failed",
            415 => "unsupported_media_type",
            422 => "invalid",
            503 => "unavailable",
            _ => "internal",
        };
        ApiError::new(e.status, code, e.message)
    }
}

fn sdp_error(e: SdpError) -> WebrtcError {
    let reason = match e {
        SdpError::Malformed(_) => "malformed",
        SdpError::NoMedia(_) => "no_media",
        SdpError::Unsupported(_) => "unsupported",
    };
    WebrtcError::new(e.http_status(), reason, e.to_string())
}

fn refusal(r: Refusal) -> WebrtcError {
    let status = match &r {
        Refusal::Malformed(_) => 400,
        Refusal::UnknownRoom(_) | Refusal::UnknownSeat { .. } | Refusal::Gone => 404,
        Refusal::BadKey(_) => 403,
        Refusal::Busy(_) | Refusal::NotPublish(_) => 409,
        Refusal::Other(_) => 500,
    };
    WebrtcError::new(status, r.label(), r.to_string())
}

impl Engine {
    /// WHIP: publishes `offer` into `room`'s `seat`, authorised by the seat's publish key.
    pub fn whip_publish(
        &self,
        room: &str,
        seat: &str,
        key: Option<&str>,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<SdpAnswer, ApiError> {
        let kind = SessionKind::Whip {
            room: room.to_owned(),
            seat: seat.to_owned(),
        };
        let sessions = self.webrtc.clone();
        sessions.offered(&kind);
        let refuse = |e: WebrtcError| -> ApiError { sessions.refuse(&kind, e).into() };
        if !self.accepting.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(refuse(WebrtcError::new(
                503,
                "shutdown",
                "the engine is shutting down",
            )));
        }
        let Some(key) = key else {
            return Err(refuse(WebrtcError::new(
                401,
                "unauthorized",
                "missing publish key: send Authorization: Bearer <the seat's key> (GET \
                 /v1/rooms/{room} shows it)",
            )));
        };
        // Who first, what second: an offer is only read for a key that may publish here.
        self.with_room(room, |r| Ok(r.check_publish_key(seat, key)))
            .map_err(|e| refuse(WebrtcError::new(e.status, "unknown_room", e.message)))?
            .map_err(|e| refuse(refusal(e)))?;
        let parsed = Offer::parse(offer).map_err(|e| refuse(sdp_error(e)))?;
        let choices = sdp::choose_whip(&parsed).map_err(|e| refuse(sdp_error(e)))?;
        let video = choices
            .iter()
            .find(|c| c.kind == Kind::Video)
            .map(|c| {
                if c.codec.is("VP8") {
                    WebrtcVideo::Vp8
                } else {
                    WebrtcVideo::H264
                }
            })
            .unwrap_or(WebrtcVideo::H264);
        let audio = choices.iter().any(|c| c.kind == Kind::Audio);
        let created = self.webrtc.create(kind.clone(), &parsed, |id, on_event| {
            // Seat rules first (key, takeover), under the room's lock only briefly.
            let t0 = std::time::Instant::now();
            let sink = self
                .with_room(room, |r| {
                    Ok(r.attach_publisher(seat, key, Input::Webrtc { video, audio }, peer))
                })
                .map_err(|e| WebrtcError::new(e.status, "unknown_room", e.message))?
                .map_err(refusal)?;
            let attached = t0.elapsed();
            let (session, answer) = IngestSession::start(
                &format!("whip-{room}-{seat}-{id}"),
                &self.webrtc.ice,
                offer,
                &choices,
                Box::new(sink),
                self.webrtc.whip.io.clone(),
                on_event,
            )
            .map_err(|e| {
                WebrtcError::new(
                    500,
                    "negotiation",
                    format!("WebRTC negotiation failed: {e:#}"),
                )
            })?;
            tracing::debug!(room, seat, ?attached, total = ?t0.elapsed(), "WHIP session set up");
            Ok((LiveSession::whip(session), answer))
        })?;
        tracing::info!(room, seat, %peer, session = %created.id, "WHIP publisher accepted");
        Ok(SdpAnswer {
            location: format!("/whip/{room}/{seat}/{}", created.id),
            id: created.id,
            sdp: sdp::keep_candidates(&created.answer, &self.webrtc.ice.addresses),
        })
    }

    /// WHEP: plays `room` (its top rung, or `rung`) to the viewer who sent `offer`.
    /// `token`: the playback token from the path or the Bearer header.
    pub fn whep_play(
        &self,
        room: &str,
        rung: Option<&str>,
        token: Option<&str>,
        offer: &str,
    ) -> Result<SdpAnswer, ApiError> {
        let kind = SessionKind::Whep {
            room: room.to_owned(),
            rung: rung.map(str::to_owned),
        };
        let sessions = self.webrtc.clone();
        sessions.offered(&kind);
        let refuse = |e: WebrtcError| -> ApiError { sessions.refuse(&kind, e).into() };
        if self.config.playback_tokens_required() {
            let token = token.ok_or_else(|| {
                refuse(WebrtcError::new(
                    403,
                    "token",
                    crate::api::token::TokenError::Missing.to_string(),
                ))
            })?;
            self.playback_signer
                .verify(room, token, SystemTime::now())
                .map_err(|e| refuse(WebrtcError::new(403, "token", e.to_string())))?;
        }
        let parsed = Offer::parse(offer).map_err(|e| refuse(sdp_error(e)))?;
        let hub = self
            .with_room(room, |r| Ok(r.whep_hub(rung)))
            .map_err(|e| refuse(WebrtcError::new(e.status, "unknown_room", e.message)))?
            .map_err(|e| {
                let m = format!("{e:#}");
                refuse(if m.contains("has no rung") {
                    WebrtcError::new(404, "unknown_rung", m)
                } else {
                    WebrtcError::new(409, "not_h264", m)
                })
            })?;
        let profile = hub
            .profile()
            .map(|p| H264Profile::from_caps_name(&p))
            .unwrap_or(H264Profile::High);
        let choices = sdp::choose_whep(&parsed, profile).map_err(|e| refuse(sdp_error(e)))?;
        let created = self.webrtc.create(kind.clone(), &parsed, |id, on_event| {
            let (viewer, answer) = Viewer::start(
                &format!("whep-{room}-{id}"),
                &self.webrtc.ice,
                offer,
                &choices,
                hub,
                on_event,
            )
            .map_err(|e| {
                WebrtcError::new(
                    500,
                    "negotiation",
                    format!("WebRTC negotiation failed: {e:#}"),
                )
            })?;
            Ok((LiveSession::whep(viewer), answer))
        })?;
        let base = match rung {
            Some(r) => format!("/live/{room}/{r}/whep"),
            None => format!("/live/{room}/whep"),
        };
        Ok(SdpAnswer {
            location: format!("{base}/{}", created.id),
            id: created.id,
            sdp: sdp::keep_candidates(&created.answer, &self.webrtc.ice.addresses),
        })
    }

    /// DELETE on a session: ends it.
    pub fn webrtc_end(&self, kind: &SessionKind, id: &str) -> Result<(), ApiError> {
        self.webrtc
            .delete(kind, id)
            .ok_or_else(|| ApiError::not_found(format!("no WebRTC session {id:?} here")))
    }

    /// PATCH on a session: trickled ICE candidates.
    pub fn webrtc_trickle(
        &self,
        kind: &SessionKind,
        id: &str,
        fragment: &str,
    ) -> Result<(), ApiError> {
        self.webrtc
            .trickle(kind, id, fragment)
            .map_err(ApiError::from)
    }
}
