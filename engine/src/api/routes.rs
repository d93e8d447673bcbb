//! The API's routes: matching a method and path to a route, and the table of every route (the
//! OpenAPI document is checked against it by a test). Path ids must be valid names, so nothing
//! like `..` or `%2f` ever reaches a handler.

use super::model::ApiError;
use crate::presets::validate::is_valid_name;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    Presets,
    ListRooms,
    CreateRoom,
    GetRoom(String),
    DeleteRoom(String),
    PutLayout(String),
    AddSeat(String),
    PatchSeat(String, String),
    DeleteSeat(String, String),
    RotateKey(String, String),
    Stats(String),
    Snapshot(String),
    PlaybackToken(String),
    AddOutput(String),
    DeleteOutput(String, String),
    /// Server-sent events for the console (see `api::events`).
    Events,
}

/// (method, path template) of every route, as in the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/presets"),
    ("GET", "/v1/rooms"),
    ("POST", "/v1/rooms"),
    ("GET", "/v1/rooms/{room}"),
    ("DELETE", "/v1/rooms/{room}"),
    ("PUT", "/v1/rooms/{room}/layout"),
    ("POST", "/v1/rooms/{room}/seats"),
    ("PATCH", "/v1/rooms/{room}/seats/{seat}"),
    ("DELETE", "/v1/rooms/{room}/seats/{seat}"),
    ("POST", "/v1/rooms/{room}/seats/{seat}/key"),
    ("GET", "/v1/rooms/{room}/stats"),
    ("GET", "/v1/rooms/{room}/snapshot.jpg"),
    ("POST", "/v1/rooms/{room}/playback-token"),
    ("POST", "/v1/rooms/{room}/outputs"),
    ("DELETE", "/v1/rooms/{room}/outputs/{output}"),
    ("GET", "/v1/events"),
];

/// The operator console's files (see `api::console`): public, outside `/v1`; the API calls the
/// page makes carry the token.
pub const CONSOLE_ROUTES: &[(&str, &str)] = &[("GET", "/console/{path}")];

/// Playback routes, served outside `/v1` without the API token (see `api::http::live`).
pub const PLAYBACK_ROUTES: &[(&str, &str)] = &[
    ("GET", "/live/{room}/index.m3u8"),
    ("GET", "/live/{room}/{rung}/{object}"),
];

/// WHIP and WHEP signalling (see `api::webrtc`): publish keys and playback tokens, not the API
/// token.
pub const WEBRTC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/whip/{room}/{seat}"),
    ("OPTIONS", "/whip/{room}/{seat}"),
    ("DELETE", "/whip/{room}/{seat}/{session}"),
    ("PATCH", "/whip/{room}/{seat}/{session}"),
    ("OPTIONS", "/whip/{room}/{seat}/{session}"),
    ("POST", "/live/{room}/whep"),
    ("OPTIONS", "/live/{room}/whep"),
    ("DELETE", "/live/{room}/whep/{session}"),
    ("PATCH", "/live/{room}/whep/{session}"),
    ("OPTIONS", "/live/{room}/whep/{session}"),
    ("POST", "/live/{room}/{rung}/whep"),
    ("OPTIONS", "/live/{room}/{rung}/whep"),
    ("DELETE", "/live/{room}/{rung}/whep/{session}"),
    ("PATCH", "/live/{room}/{rung}/whep/{session}"),
];

impl Route {
    /// The path template, for metrics labels.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Presets => "/v1/presets",
            Route::ListRooms | Route::CreateRoom => "/v1/rooms",
            Route::GetRoom(_) | Route::DeleteRoom(_) => "/v1/rooms/{room}",
            Route::PutLayout(_) => "/v1/rooms/{room}/layout",
            Route::AddSeat(_) => "/v1/rooms/{room}/seats",
            Route::PatchSeat(..) | Route::DeleteSeat(..) => "/v1/rooms/{room}/seats/{seat}",
            Route::RotateKey(..) => "/v1/rooms/{room}/seats/{seat}/key",
            Route::Stats(_) => "/v1/rooms/{room}/stats",
            Route::Snapshot(_) => "/v1/rooms/{room}/snapshot.jpg",
            Route::PlaybackToken(_) => "/v1/rooms/{room}/playback-token",
            Route::AddOutput(_) => "/v1/rooms/{room}/outputs",
            Route::DeleteOutput(..) => "/v1/rooms/{room}/outputs/{output}",
            Route::Events => "/v1/events",
        }
    }

    /// Routes under `/v1` need the bearer token; health, readiness and metrics stay open.
    pub fn needs_auth(&self) -> bool {
        !matches!(self, Route::Healthz | Route::Readyz | Route::Metrics)
    }

    /// Routes whose request has a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Route::CreateRoom
                | Route::PutLayout(_)
                | Route::AddSeat(_)
                | Route::PatchSeat(..)
                | Route::PlaybackToken(_)
                | Route::AddOutput(_)
        )
    }
}

fn id(kind: &str, s: &str) -> Result<String, ApiError> {
    if is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(ApiError::not_found(format!(
            "no {kind} {s:?} ({kind} ids are 1 to 64 of A-Z a-z 0-9 _ -)"
        )))
    }
}

/// Matches a request. Unknown paths are 404; known paths with another method are 405.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let wrong = |allowed: &str| {
        Err(ApiError::method_not_allowed(format!(
            "{method} is not allowed on {path} (allowed: {allowed})"
        )))
    };
    match (segs.as_slice(), method) {
        (["healthz"], "GET") => Ok(Route::Healthz),
        (["healthz"], _) => wrong("GET"),
        (["readyz"], "GET") => Ok(Route::Readyz),
        (["readyz"], _) => wrong("GET"),
        (["metrics"], "GET") => Ok(Route::Metrics),
        (["metrics"], _) => wrong("GET"),
        (["v1", "presets"], "GET") => Ok(Route::Presets),
        (["v1", "presets"], _) => wrong("GET"),
        (["v1", "events"], "GET") => Ok(Route::Events),
        (["v1", "events"], _) => wrong("GET"),
        (["v1", "rooms"], "GET") => Ok(Route::ListRooms),
        (["v1", "rooms"], "POST") => Ok(Route::CreateRoom),
        (["v1", "rooms"], _) => wrong("GET, POST"),
        (["v1", "rooms", r], "GET") => Ok(Route::GetRoom(id("room", r)?)),
        (["v1", "rooms", r], "DELETE") => Ok(Route::DeleteRoom(id("room", r)?)),
        (["v1", "rooms", _], _) => wrong("GET, DELETE"),
        (["v1", "rooms", r, "layout"], "PUT") => Ok(Route::PutLayout(id("room", r)?)),
        (["v1", "rooms", _, "layout"], _) => wrong("PUT"),
        (["v1", "rooms", r, "seats"], "POST") => Ok(Route::AddSeat(id("room", r)?)),
        (["v1", "rooms", _, "seats"], _) => wrong("POST"),
        (["v1", "rooms", r, "seats", s], "PATCH") => {
            Ok(Route::PatchSeat(id("room", r)?, id("seat", s)?))
        }
        (["v1", "rooms", r, "seats", s], "DELETE") => {
            Ok(Route::DeleteSeat(id("room", r)?, id("seat", s)?))
        }
        (["v1", "rooms", _, "seats", _], _) => wrong("PATCH, DELETE"),
        (["v1", "rooms", r, "seats", s, "key"], "POST") => {
            Ok(Route::RotateKey(id("room", r)?, id("seat", s)?))
        }
        (["v1", "rooms", _, "seats", _, "key"], _) => wrong("POST"),
        (["v1", "rooms", r, "stats"], "GET") => Ok(Route::Stats(id("room", r)?)),
        (["v1", "rooms", _, "stats"], _) => wrong("GET"),
        (["v1", "rooms", r, "snapshot.jpg"], "GET") => Ok(Route::Snapshot(id("room", r)?)),
        (["v1", "rooms", _, "snapshot.jpg"], _) => wrong("GET"),
        (["v1", "rooms", r, "playback-token"], "POST") => Ok(Route::PlaybackToken(id("room", r)?)),
        (["v1", "rooms", _, "playback-token"], _) => wrong("POST"),
        (["v1", "rooms", r, "outputs"], "POST") => Ok(Route::AddOutput(id("room", r)?)),
        (["v1", "rooms", _, "outputs"], _) => wrong("POST"),
        (["v1", "rooms", r, "outputs", o], "DELETE") => {
            Ok(Route::DeleteOutput(id("room", r)?, id("output", o)?))
        }
        (["v1", "rooms", _, "outputs", _], _) => wrong("DELETE"),
        _ => Err(ApiError::not_found(format!(
            "no route {path} (see docs/openapi.yaml for the API)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_matches_its_route() {
        for (m, t) in ROUTES {
            let path = t
                .replace("{room}", "r1")
                .replace("{seat}", "s1")
                .replace("{output}", "o1");
            let r = route(m, &path).unwrap_or_else(|e| panic!("{m} {path}: {e:?}"));
            assert_eq!(r.template(), *t);
        }
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(route("GET", "/v2/rooms").unwrap_err().status, 404);
        assert_eq!(route("GET", "/").unwrap_err().status, 404);
        assert_eq!(route("PUT", "/v1/rooms").unwrap_err().status, 405);
        assert_eq!(
            route("POST", "/v1/rooms/r1/layout").unwrap_err().status,
            405
        );
        assert_eq!(route("GET", "/v1/rooms/").unwrap(), Route::ListRooms);
    }

    #[test]
    fn traversal_and_bad_ids_are_404() {
        for p in [
            "/v1/rooms/..",
            "/v1/rooms/%2e%2e",
            "/v1/rooms/a%2Fb",
            "/v1/rooms/a.b/stats",
            "/v1/rooms/r1/seats/..",
        ] {
            let m = if p.contains("seats") { "DELETE" } else { "GET" };
            assert_eq!(route(m, p).unwrap_err().status, 404, "{p}");
        }
        let long = format!("/v1/rooms/{}", "x".repeat(65));
        assert_eq!(route("GET", &long).unwrap_err().status, 404);
    }

    #[test]
    fn auth_and_bodies() {
        assert!(!Route::Metrics.needs_auth());
        assert!(Route::ListRooms.needs_auth());
        assert!(Route::CreateRoom.has_body());
        assert!(!Route::Stats("r".into()).has_body());
    }
}

#[cfg(test)]
mod openapi {
    use super::ROUTES;
    use std::collections::BTreeSet;

    /// docs/openapi.yaml documents exactly the routes the router serves.
    #[test]
    fn openapi_document_matches_the_router() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
        let text = std::fs::read_to_string(&path).expect("docs/openapi.yaml");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (p, item) in doc["paths"].as_mapping().expect("paths") {
            let p = p.as_str().expect("path").to_owned();
            for (m, _) in item.as_mapping().expect("path item") {
                let m = m.as_str().expect("method");
                if m != "parameters" {
                    documented.insert((m.to_uppercase(), p.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .chain(super::PLAYBACK_ROUTES)
            .chain(super::WEBRTC_ROUTES)
            .chain(super::CONSOLE_ROUTES)
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(
            documented.difference(&served).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented but not served"
        );
        assert_eq!(
            served.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "served but not documented"
        );
        // Every $ref resolves.
        for r in text.split("$ref: \"#/").skip(1) {
            let target = r.split('"').next().unwrap();
            let mut node = &doc;
            for part in target.split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "dangling $ref #/{target}");
        }
    }
}
