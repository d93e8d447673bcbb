//! The control plane's JSON: requests (parsed with the path of any bad field), responses, and
//! API errors with their HTTP status. No HTTP types here: `api::http` does the transport.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::presets::ladder::Canvas;
use crate::presets::validate::{FieldError, Invalid, is_valid_name};
use crate::presets::{Beauty, Ladder, Layout, PresetError, Presets};
use crate::room::{OutputKind, OutputSpec, SeatSpec, SpecError};
use crate::source::Source;

/// An error as the API returns it: `{"error": code, "message": ...}` with an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, "bad_request", m)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "missing or wrong bearer token (send Authorization: Bearer <token>)",
        )
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(403, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, "not_found", m)
    }
    pub fn method_not_allowed(m: impl Into<String>) -> Self {
        Self::new(405, "method_not_allowed", m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(409, "conflict", m)
    }
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            413,
            "body_too_large",
            format!("request body is over the limit of {limit} bytes"),
        )
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(422, "invalid", m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(503, "unavailable", m)
    }
    pub fn timeout(m: impl Into<String>) -> Self {
        Self::new(503, "timeout", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(500, "internal", m)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Invalid(i) => i.into(),
            SpecError::Conflict(m) => ApiError::conflict(m),
        }
    }
}

impl From<PresetError> for ApiError {
    fn from(e: PresetError) -> Self {
        match e {
            PresetError::Unknown { .. } => ApiError::not_found(e.to_string()),
            _ => ApiError::invalid(e.to_string()),
        }
    }
}

fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
    Invalid(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
    .into()
}

/// Parses a JSON body: malformed JSON is a 400, a well-formed body with wrong types, missing
/// or unknown fields is a 422 naming the field.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
    parse_value(value)
}

pub fn parse_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        invalid_field(&field, e.inner().to_string())
    })
}

/// A preset name (`"pk"`) or an inline object of the preset's schema.
fn preset_or_inline<T: DeserializeOwned>(
    field: &str,
    v: Value,
    by_name: impl FnOnce(&str) -> Result<T, PresetError>,
) -> Result<T, ApiError> {
    match v {
        Value::String(name) => {
            if name.contains('/') || name.ends_with(".toml") {
                // Files on the server are not the API's to read.
                return Err(invalid_field(
                    field,
                    "must be a preset name or an inline object",
                ));
            }
            Ok(by_name(&name)?)
        }
        Value::Object(_) => serde_path_to_error::deserialize(v)
            .map_err(|e| invalid_field(&format!("{field}.{}", e.path()), e.inner().to_string())),
        _ => Err(invalid_field(
            field,
            "must be a preset name (string) or an inline object",
        )),
    }
}

pub fn resolve_layout(presets: &Presets, v: Value) -> Result<Layout, ApiError> {
    let mut l: Layout = preset_or_inline("layout", v, |n| presets.layout(n))?;
    if l.name.is_empty() {
        l.name = "custom".into();
    }
    l.validate().map_err(|e| prefix("layout", e))?;
    Ok(l)
}

pub fn resolve_beauty(presets: &Presets, field: &str, v: Value) -> Result<Beauty, ApiError> {
    let mut b: Beauty = preset_or_inline(field, v, |n| presets.beauty(n))?;
    if b.name.is_empty() {
        b.name = "custom".into();
    }
    b.validate().map_err(|e| prefix(field, e))?;
    Ok(b)
}

fn prefix(p: &str, e: Invalid) -> ApiError {
    Invalid(
        e.0.into_iter()
            .map(|f| FieldError {
                field: format!("{p}.{}", f.field),
                message: f.message,
            })
            .collect(),
    )
    .into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    pub id: Option<String>,
    pub ladder: Option<Value>,
    pub canvas: Option<Canvas>,
    pub layout: Option<Value>,
    #[serde(default)]
    pub seats: Vec<SeatRequest>,
    #[serde(default)]
    pub outputs: Vec<OutputRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    pub id: String,
    pub source: String,
    pub slot: Option<usize>,
    pub volume: Option<f64>,
    pub muted: Option<bool>,
    pub beauty: Option<Value>,
    pub placeholder: Option<String>,
}

/// Live changes to a seat; absent fields stay as they are. `"slot": null` takes the seat off
/// the layout (hidden, still heard) until a slot is given again.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatPatch {
    #[serde(default, deserialize_with = "present")]
    pub slot: Option<Option<usize>>,
    pub volume: Option<f64>,
    pub muted: Option<bool>,
    pub beauty: Option<Value>,
    pub placeholder: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputRequest {
    File {
        id: Option<String>,
        dir: String,
    },
    /// LL-HLS is on for every room; `{"kind": "hls", "enabled": false}` turns it off.
    Hls {
        id: Option<String>,
        enabled: bool,
    },
    /// Push a rung (default: the top one) and the audio to `rtmp://` or `rtmps://` (FLV).
    Rtmp {
        id: Option<String>,
        url: String,
        rung: Option<String>,
    },
    /// Push a rung and the audio to `srt://` (MPEG-TS).
    Srt {
        id: Option<String>,
        url: String,
        rung: Option<String>,
    },
    /// Record rungs (default: the top one) with the audio to fragmented MP4, rolled every
    /// `segment_minutes` (default 10), under `dir/<room>/<rung>/` (default dir `recordings`).
    Record {
        id: Option<String>,
        dir: Option<String>,
        rungs: Option<Vec<String>>,
        segment_minutes: Option<u64>,
    },
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /v1/rooms/{room}/playback-token` (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackTokenRequest {
    pub ttl_seconds: Option<u64>,
}

impl PlaybackTokenRequest {
    pub fn ttl(&self) -> Result<Option<std::time::Duration>, ApiError> {
        match self.ttl_seconds {
            None => Ok(None),
            Some(s) if (60..=30 * 86_400).contains(&s) => {
                Ok(Some(std::time::Duration::from_secs(s)))
            }
            Some(s) => Err(invalid_field(
                "ttl_seconds",
                format!("{s} is out of range (allowed 60..=2592000)"),
            )),
        }
    }
}

impl SeatRequest {
    pub fn into_spec(self, presets: &Presets, field: &str) -> Result<SeatSpec, ApiError> {
        let source = Source::parse(&self.source)
            .map_err(|e| invalid_field(&format!("{field}.source"), e.to_string()))?;
        let beauty = match self.beauty {
            Some(v) => resolve_beauty(presets, &format!("{field}.beauty"), v)?,
            None => presets.beauty("off").unwrap_or_default(),
        };
        Ok(SeatSpec {
            id: self.id,
            source,
            slot: self.slot,
            volume: self.volume.unwrap_or(1.0),
            muted: self.muted.unwrap_or(false),
            beauty,
            placeholder: self.placeholder.map(PathBuf::from),
        })
    }
}

/// Resolves an output directory against the configured data directory and output roots (see
/// `crate::outdir`), creating the data directory when missing; a directory outside them is a
/// 422 on `field` naming the roots.
pub fn resolve_output_dir(
    config: &crate::config::Config,
    field: &str,
    dir: &str,
) -> Result<PathBuf, ApiError> {
    let roots = crate::outdir::OutputRoots::prepare(&config.data_dir, &config.output_roots)
        .map_err(ApiError::internal)?;
    roots.resolve(dir).map_err(|m| invalid_field(field, m))
}

impl OutputRequest {
    /// The output as the room runs it. `index` names outputs without an id; rung names are
    /// checked against `ladder` by `room::check_output`.
    pub fn into_spec(
        self,
        roots: &crate::config::Config,
        field: &str,
        index: usize,
        ladder: &Ladder,
    ) -> Result<OutputSpec, ApiError> {
        let top = || {
            ladder
                .rungs_by_size()
                .first()
                .map(|r| r.name.clone())
                .unwrap_or_default()
        };
        let (id, kind) = match self {
            OutputRequest::File { id, dir } => (
                id.unwrap_or_else(|| format!("file-{index}")),
                OutputKind::File {
                    dir: resolve_output_dir(roots, &format!("{field}.dir"), &dir)?,
                },
            ),
            OutputRequest::Rtmp { id, url, rung } | OutputRequest::Srt { id, url, rung } => {
                let target = crate::push::parse_push_url(&url)
                    .map_err(|e| invalid_field(&format!("{field}.url"), e))?;
                let kind = match target.protocol {
                    crate::push::PushProtocol::Rtmp => "rtmp",
                    crate::push::PushProtocol::Srt => "srt",
                };
                (
                    id.unwrap_or_else(|| format!("{kind}-{index}")),
                    OutputKind::Push {
                        target,
                        rung: rung.unwrap_or_else(top),
                    },
                )
            }
            OutputRequest::Record {
                id,
                dir,
                rungs,
                segment_minutes,
            } => {
                // Files go to <dir>/<room>/<rung>/ (see crate::record).
                let dir = dir.unwrap_or_else(|| "recordings".to_owned());
                (
                    id.unwrap_or_else(|| format!("record-{index}")),
                    OutputKind::Record {
                        dir: resolve_output_dir(roots, &format!("{field}.dir"), &dir)?,
                        rungs: rungs.unwrap_or_else(|| vec![top()]),
                        segment: std::time::Duration::from_secs(
                            segment_minutes.unwrap_or(10).saturating_mul(60),
                        ),
                    },
                )
            }
            OutputRequest::Hls { .. } => {
                return Err(invalid_field(
                    field,
                    "the hls output is not a separate output (it only takes enabled: false)",
                ));
            }
        };
        if !is_valid_name(&id) {
            return Err(invalid_field(
                &format!("{field}.id"),
                format!("{id:?} is not a valid id (allowed: 1 to 64 of A-Z a-z 0-9 _ -)"),
            ));
        }
        Ok(OutputSpec { id, kind })
    }
}

/// Ladder from a preset name or inline object, with an optional canvas override.
pub fn resolve_ladder(
    presets: &Presets,
    v: Option<Value>,
    canvas: Option<Canvas>,
) -> Result<Ladder, ApiError> {
    let mut ladder: Ladder = preset_or_inline(
        "ladder",
        v.unwrap_or_else(|| Value::String("showroom-720p".into())),
        |n| presets.ladder(n),
    )?;
    if ladder.name.is_empty() {
        ladder.name = "custom".into();
    }
    if let Some(c) = canvas {
        ladder.canvas = c;
    }
    ladder.validate().map_err(|e| prefix("ladder", e))?;
    Ok(ladder)
}

/// A random id or key: 128 bits as 32 hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // The OS has no randomness: fall back to time and address entropy, still unique.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b.copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presets() -> Presets {
        Presets::embedded().unwrap()
    }

    #[test]
    fn malformed_json_is_400_and_wrong_types_422() {
        let e = parse_body::<CreateRoom>(b"{\"id\": ").unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse_body::<CreateRoom>(br#"{"seats": [{"id": "a", "source": 5}]}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.starts_with("seats[0].source:"), "{}", e.message);
        let e = parse_body::<CreateRoom>(br#"{"sets": []}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.contains("unknown field `sets`"), "{}", e.message);
        let e = parse_body::<CreateRoom>(b"[1,2]").unwrap_err();
        assert_eq!(e.status, 422);
    }

    #[test]
    fn presets_or_inline() {
        let p = presets();
        assert_eq!(
            resolve_layout(&p, Value::String("pk".into()))
                .unwrap()
                .slot_count(),
            2
        );
        let e = resolve_layout(&p, Value::String("nope".into())).unwrap_err();
        assert_eq!(e.status, 404);
        let e = resolve_layout(&p, Value::String("/etc/passwd".into())).unwrap_err();
        assert_eq!(e.status, 422);
        let inline = serde_json::json!({"slots": [{"x": 0.0, "y": 0.0, "w": 1.5, "h": 1.0}]});
        let e = resolve_layout(&p, inline).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(
            e.message.contains("layout.slots[0].w: 1.5 is out of range"),
            "{}",
            e.message
        );
        let inline = serde_json::json!({"slots": [{"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "fit": "stretch"}]});
        let e = resolve_layout(&p, inline).unwrap_err();
        assert!(e.message.contains("layout.slots[0].fit"), "{}", e.message);
        let e = resolve_beauty(&p, "seats[0].beauty", serde_json::json!({"smoothness": 2}))
            .unwrap_err();
        assert_eq!(
            e.message,
            "seats[0].beauty.smoothness: 2 is out of range (allowed 0..=1)"
        );
    }

    #[test]
    fn ladder_canvas_override() {
        let p = presets();
        let l = resolve_ladder(&p, None, None).unwrap();
        assert_eq!(l.name, "showroom-720p");
        let e = resolve_ladder(
            &p,
            None,
            Some(Canvas {
                width: 640,
                height: 360,
                fps: 30,
            }),
        )
        .unwrap_err();
        assert!(
            e.message.contains("larger than the canvas 640x360"),
            "{}",
            e.message
        );
    }

    #[test]
    fn output_dirs_outside_the_roots_are_422_on_the_field() {
        let t = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: t.path().join("data"),
            ..Default::default()
        };
        // The data directory is created on first use.
        let room1 = resolve_output_dir(&config, "d", "room1").unwrap();
        let roots = crate::outdir::OutputRoots::prepare(&config.data_dir, &[]).unwrap();
        assert_eq!(room1, roots.data_dir().join("room1"));
        for bad in ["../etc", "/etc"] {
            let e = resolve_output_dir(&config, "outputs[0].dir", bad).unwrap_err();
            assert_eq!(e.status, 422);
            let v = serde_json::to_value(&e).unwrap().to_string();
            assert!(v.contains("outputs[0].dir"), "{v}");
            assert!(v.contains(&roots.data_dir().display().to_string()), "{v}");
        }
    }

    #[test]
    fn seat_patch_slot_absent_null_or_set() {
        let p: SeatPatch = parse_body(br#"{"muted": true}"#).unwrap();
        assert_eq!(p.slot, None);
        let p: SeatPatch = parse_body(br#"{"slot": null}"#).unwrap();
        assert_eq!(p.slot, Some(None));
        let p: SeatPatch = parse_body(br#"{"slot": 2}"#).unwrap();
        assert_eq!(p.slot, Some(Some(2)));
        assert_eq!(
            parse_body::<SeatPatch>(br#"{"slot": -1}"#)
                .unwrap_err()
                .status,
            422
        );
    }

    #[test]
    fn random_ids_differ() {
        let (a, b) = (random_id(), random_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(is_valid_name(&a));
    }
}
