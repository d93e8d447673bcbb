//! The HTTP transport of the control plane, on hyper 1 and tokio (no framework: fourteen
//! routes do not need one, and every limit below stays visible here).
//!
//! Per request: route match (404/405), bearer auth on `/v1` (constant-time comparison),
//! body size limit (413) checked on `Content-Length` and while reading, a deadline for the
//! whole request, the engine operation on a blocking thread (GStreamer calls block), JSON out.
//! `/healthz`, `/readyz` and `/metrics` are open: probes and scrapers carry no token.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::model::{
    ApiError, CreateRoom, OutputRequest, PlaybackTokenRequest, SeatPatch, SeatRequest, parse_body,
    parse_value,
};
use super::routes::{Route, route};
use crate::metrics::{HttpMetrics, render};
use crate::service::Engine;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}
/// Response headers, as `request_with` returns them.
pub use hyper::HeaderMap;

struct State {
    engine: Arc<Engine>,
    http: HttpMetrics,
    events: super::events::EventHub,
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error_response(e: ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &e)
}

fn authorised(req: &Request<Incoming>, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(given) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn read_body(req: Request<Incoming>, limit: u64) -> Result<Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::too_large(limit));
    }
    let limited = Limited::new(req.into_body(), limit as usize);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    }
}

/// Runs an engine operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("operation failed: {e}")))?
}

fn query_u32(query: Option<&str>, key: &str) -> Result<Option<u32>, ApiError> {
    let Some(q) = query else {
        return Ok(None);
    };
    for kv in q.split('&') {
        if let Some(v) = kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{key}: {v:?} is not a whole number")));
        }
    }
    Ok(None)
}

async fn dispatch(
    st: Arc<State>,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let cfg = &st.engine.config;
    if route.needs_auth() && !authorised(&req, cfg.api_token.as_deref()) {
        return Err(ApiError::unauthorized());
    }
    let query = req.uri().query().map(str::to_owned);
    let body = if route.has_body() {
        read_body(req, cfg.max_body_bytes).await?
    } else {
        Bytes::new()
    };
    let engine = st.engine.clone();
    Ok(match route {
        Route::Healthz => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Route::Readyz => {
            if engine.ready() {
                json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
            } else {
                return Err(ApiError::unavailable(
                    "not ready: shutting down or GStreamer unavailable",
                ));
            }
        }
        Route::Metrics => {
            let st2 = st.clone();
            let text = blocking(move || Ok(render(&st2.engine, &st2.http))).await?;
            let mut r = Response::new(full(Bytes::from(text)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Route::Presets => {
            let p = &engine.presets;
            json(
                StatusCode::OK,
                &serde_json::json!({"layouts": p.layouts, "ladders": p.ladders, "beauty": p.beauty}),
            )
        }
        Route::ListRooms => {
            let rooms = blocking(move || Ok(engine.list())).await?;
            json(StatusCode::OK, &serde_json::json!({ "rooms": rooms }))
        }
        Route::CreateRoom => {
            let req: CreateRoom = parse_body(&body)?;
            let view = blocking(move || engine.create_room(req)).await?;
            json(StatusCode::CREATED, &view)
        }
        Route::GetRoom(id) => json(StatusCode::OK, &blocking(move || engine.get(&id)).await?),
        Route::DeleteRoom(id) => {
            blocking(move || engine.delete(&id)).await?;
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Route::PutLayout(id) => {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
            json(
                StatusCode::OK,
                &blocking(move || engine.set_layout(&id, v)).await?,
            )
        }
        Route::AddSeat(id) => {
            let seat: SeatRequest = parse_body(&body)?;
            json(
                StatusCode::CREATED,
                &blocking(move || engine.add_seat(&id, seat)).await?,
            )
        }
        Route::PatchSeat(id, seat) => {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
            let patch: SeatPatch = parse_value(v)?;
            json(
                StatusCode::OK,
                &blocking(move || engine.patch_seat(&id, &seat, patch)).await?,
            )
        }
        Route::RotateKey(id, seat) => json(
            StatusCode::OK,
            &blocking(move || engine.rotate_key(&id, &seat)).await?,
        ),
        Route::DeleteSeat(id, seat) => json(
            StatusCode::OK,
            &blocking(move || engine.remove_seat(&id, &seat)).await?,
        ),
        Route::Stats(id) => json(StatusCode::OK, &blocking(move || engine.stats(&id)).await?),
        Route::Snapshot(id) => {
            let width = query_u32(query.as_deref(), "width")?;
            if let Some(w) = width
                && !(16..=7680).contains(&w)
            {
                return Err(ApiError::invalid(format!(
                    "width: {w} is out of range (allowed 16..=7680)"
                )));
            }
            let jpeg = blocking(move || engine.snapshot(&id, width)).await?;
            let mut r = Response::new(full(Bytes::from(jpeg)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Route::PlaybackToken(id) => {
            let req: PlaybackTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
                PlaybackTokenRequest::default()
            } else {
                parse_body(&body)?
            };
            let ttl = req.ttl()?;
            json(
                StatusCode::CREATED,
                &blocking(move || engine.playback_token(&id, ttl)).await?,
            )
        }
        Route::AddOutput(id) => {
            let out: OutputRequest = parse_body(&body)?;
            json(
                StatusCode::CREATED,
                &blocking(move || engine.add_output(&id, out)).await?,
            )
        }
        Route::DeleteOutput(id, output) => json(
            StatusCode::OK,
            &blocking(move || engine.remove_output(&id, &output)).await?,
        ),
        Route::Events => {
            use super::events::frame;
            let sub = st.events.subscribe()?;
            let e2 = engine.clone();
            let history = blocking(move || Ok(e2.console_history())).await?;
            let latest = match st.events.fresh() {
                Some(b) => b,
                None => {
                    let snap = blocking(move || Ok(engine.console_snapshot())).await?;
                    frame("rooms", &snap)
                }
            };
            let prelude = vec![
                Bytes::from_static(b"retry: 2000\n\n"),
                frame("history", &history),
                latest,
            ];
            let mut r = Response::new(st.events.stream(sub, prelude).boxed_unsync());
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // No buffering in front of it (nginx and the like).
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
    })
}

/// `/console/...`: the embedded operator console (see `api::console`).
fn console_file(method: &str, path: &str) -> Option<Response<Body>> {
    let a = super::console::lookup(path)?;
    if method != "GET" && method != "HEAD" {
        return Some(error_response(ApiError::method_not_allowed(format!(
            "{method} is not allowed on {path} (allowed: GET, HEAD)"
        ))));
    }
    let mut r = Response::new(full(Bytes::from_static(if method == "HEAD" {
        b""
    } else {
        a.body
    })));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(a.cache));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(super::console::CSP),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if let Some(l) = a.location {
        h.insert(hyper::header::LOCATION, HeaderValue::from_static(l));
    }
    Some(r)
}

/// CORS and caching for playback objects: players on any origin may fetch them.
fn playback(
    mut r: Response<Body>,
    content_type: &'static str,
    cache: &'static str,
) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("*"),
    );
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Content-Length, Age"),
    );
    r
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const MEDIA: &str = "video/mp4";

fn hls_error(e: crate::hls::HlsError) -> ApiError {
    match e.http_status() {
        400 => ApiError::bad_request(e.to_string()),
        404 => ApiError::not_found(e.to_string()),
        503 => ApiError::unavailable(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// `/live/{room}/index.m3u8` and `/live/{room}/{rung}/{index.m3u8|init*.mp4|seg*.m4s|part*.m4s}`.
/// Open to every player (no API token); blocking playlist reloads and preload-hinted parts
/// wait for the media they name, bounded by three target durations.
async fn live(
    st: &State,
    method: &str,
    path: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    use crate::hls::{HlsPath, PlaylistRequest, Resource};
    if method == "OPTIONS" {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        return Ok(playback(r, "text/plain", "max-age=600"));
    }
    if method != "GET" && method != "HEAD" {
        return Err(ApiError::method_not_allowed(format!(
            "{method} is not allowed on {path} (allowed: GET, HEAD, OPTIONS)"
        )));
    }
    // `/live/{room}~{token}/...`: the token rides in the room segment (see api::token).
    let rest = path
        .strip_prefix("/live/")
        .ok_or_else(|| ApiError::not_found(format!("no playback object {path}")))?;
    let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (room_seg, token) = crate::api::token::split_room_segment(segment);
    let plain = format!("/live/{room_seg}/{tail}");
    let parsed = crate::hls::parse_path(&plain)
        .ok_or_else(|| ApiError::not_found(format!("no playback object {path}")))?;
    let room_id = match &parsed {
        HlsPath::Multivariant { room } | HlsPath::Rung { room, .. } => *room,
    };
    if st.engine.config.playback_tokens_required() {
        let token = token.ok_or_else(|| {
            ApiError::forbidden(crate::api::token::TokenError::Missing.to_string())
        })?;
        st.engine
            .playback_signer
            .verify(room_id, token, std::time::SystemTime::now())
            .map_err(|e| ApiError::forbidden(e.to_string()))?;
    }
    let pkg = st
        .engine
        .hls(room_id)
        .ok_or_else(|| ApiError::not_found(format!("room {room_id:?} has no LL-HLS playback")))?;
    let hroom = &pkg.room;
    let wait = hroom.config().blocking_timeout();
    let body = |b: Bytes| Response::new(full(b));
    Ok(match parsed {
        HlsPath::Multivariant { .. } => {
            playback(body(Bytes::from(pkg.multivariant())), PLAYLIST, "no-cache")
        }
        HlsPath::Rung { rung, resource, .. } => {
            let track = hroom.track(rung).cloned().ok_or_else(|| {
                ApiError::not_found(format!("room {room_id:?} has no rung {rung:?}"))
            })?;
            match resource {
                Resource::Playlist => {
                    let req = PlaylistRequest::from_query(query).map_err(hls_error)?;
                    if !track.is_ready() {
                        // The first part is moments away: wait for it rather than serve an
                        // empty playlist players would give up on.
                        tokio::time::timeout(wait, track.wait_for(0, Some(0)))
                            .await
                            .map_err(|_| ApiError::unavailable("no media yet; try again shortly"))?
                            .map_err(hls_error)?;
                    }
                    let text = hroom
                        .blocking_playlist(rung, req, wait)
                        .await
                        .map_err(hls_error)?;
                    playback(body(Bytes::from(text)), PLAYLIST, "no-cache")
                }
                Resource::Init(v) => {
                    let b = track
                        .init_version(v)
                        .ok_or_else(|| ApiError::not_found("no such init segment"))?;
                    playback(body(b), MEDIA, "max-age=60")
                }
                Resource::Segment(msn) => {
                    let parts = track.segment(msn).ok_or_else(|| {
                        ApiError::not_found(format!("segment {msn} is not available"))
                    })?;
                    let mut all = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                    for p in parts {
                        all.extend_from_slice(&p);
                    }
                    playback(body(Bytes::from(all)), MEDIA, "max-age=60, immutable")
                }
                Resource::Part(msn, idx) => {
                    let b = track
                        .blocking_part(msn, idx, wait)
                        .await
                        .map_err(hls_error)?;
                    playback(body(b), MEDIA, "max-age=60, immutable")
                }
            }
        }
    })
}

async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    if let Some(target) = super::webrtc::parse_path(req.uri().path()) {
        let template = if req.uri().path().starts_with("/whip/") {
            "/whip/{room}/{seat}"
        } else {
            "/live/{room}/whep"
        };
        let resp = match target {
            Err(e) => error_response(e),
            Ok(target) => {
                let headers = req.headers().clone();
                let limit = st.engine.config.max_body_bytes;
                let deadline = st.engine.config.request_timeout();
                let engine = st.engine.clone();
                let work = async {
                    let body = read_body(req, limit).await?;
                    super::webrtc::handle(engine, target, &method, &headers, body, peer).await
                };
                match tokio::time::timeout(deadline, work).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => error_response(e),
                    Err(_) => error_response(ApiError::timeout(format!(
                        "the request took longer than {} ms",
                        deadline.as_millis()
                    ))),
                }
            }
        };
        let resp = super::webrtc::cors(resp);
        st.http.record(
            template,
            &method,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        return Ok(resp);
    }
    if let Some(resp) = console_file(&method, req.uri().path()) {
        st.http.record(
            "/console/{path}",
            &method,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        return Ok(resp);
    }
    if req.uri().path().starts_with("/live/") {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let resp = match live(&st, &method, &path, &query).await {
            Ok(r) => r,
            Err(e) => playback(error_response(e), "application/json", "no-store"),
        };
        let template = if path.ends_with("/index.m3u8") {
            "/live/{room}/playlists"
        } else {
            "/live/{room}/media"
        };
        st.http.record(
            template,
            &method,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        return Ok(resp);
    }
    let (template, resp) = match route(&method, req.uri().path()) {
        Err(e) => ("unmatched", error_response(e)),
        Ok(r) => {
            let template = r.template();
            let deadline = st.engine.config.request_timeout();
            let resp = match tokio::time::timeout(deadline, dispatch(st.clone(), r, req)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => error_response(e),
                Err(_) => error_response(ApiError::timeout(format!(
                    "the request took longer than {} ms",
                    deadline.as_millis()
                ))),
            };
            (template, resp)
        }
    };
    st.http.record(
        template,
        &method,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(resp)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (up to `drain`).
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let (events, publisher) = super::events::EventHub::new(super::events::MAX_SUBSCRIBERS);
    let ticker = tokio::spawn(event_ticker(engine.clone(), publisher));
    let http = HttpMetrics::with_event_streams(events.counter());
    let state = Arc::new(State {
        engine,
        http,
        events,
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok((s, peer)) => (s, peer),
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service_fn(move |req| handle(st.clone(), req, peer)));
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = fut.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    // Ends every event stream, so they do not hold the drain up.
    ticker.abort();
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

/// Once a second: CPU and history for every room, and, while anyone listens, one snapshot for
/// all event streams (see `api::events`).
async fn event_ticker(engine: Arc<Engine>, publisher: super::events::Publisher) {
    let mut tick = tokio::time::interval(super::events::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let build = publisher.subscribers() > 0;
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || e.console_tick(build)).await {
            Ok(Some(json)) => publisher.publish(super::events::frame("rooms", &json)),
            Ok(None) => {}
            Err(e) => tracing::warn!("console tick failed: {e}"),
        }
    }
}

/// A minimal HTTP/1.1 client on hyper, for `--demo`, tests and benchmarks: one request on a
/// fresh connection. Returns (status, content type, body).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, String, Bytes)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let (status, h, bytes) = request_with(addr, method, path, &headers, body).await?;
    let ctype = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, ctype, bytes))
}

/// The same with any request headers; returns the response headers too.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, headers, bytes))
}
