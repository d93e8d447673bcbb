//! The operator console's files under `/console/`, embedded at build time (see `engine/build.rs`
//! and `console/`). The files are public: the page holds no secret, and every API call it
//! makes carries the operator's token (kept in the tab's session storage, never in a URL).
//!
//! Hashed assets (`assets/*`) are cached for a year; `index.html` is revalidated on every load,
//! so a new build is picked up at once. Paths that name no file and look like a page
//! (`/console/rooms/pk`) get `index.html` (the console routes in the browser). Every response
//! carries a strict Content-Security-Policy: scripts, styles and connections to this origin
//! only; blobs for the snapshot download and hls.js's media source and worker.

mod assets {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// Served when `console/dist` was not built before the engine.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>showmix console</title>\
<p>The console was not built into this binary. Run <code>make console</code> (or <code>make \
build</code>, <code>make run</code>, <code>make test</code>) and rebuild showmix.</p>";

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// A file to send: status, content type, cache policy, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    pub status: u16,
    pub content_type: &'static str,
    pub cache: &'static str,
    pub body: &'static [u8],
    /// For `/console`: where to send the browser instead.
    pub location: Option<&'static str>,
}

/// Whether the console was built into this binary.
pub fn built() -> bool {
    assets::BUILT
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("ico") => "image/x-icon",
        Some("json") | Some("map") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn find(path: &str) -> Option<&'static [u8]> {
    assets::ASSETS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| *b)
}

fn index() -> Asset {
    Asset {
        status: 200,
        content_type: "text/html; charset=utf-8",
        cache: "no-cache",
        body: find("index.html").unwrap_or(NOT_BUILT.as_bytes()),
        location: None,
    }
}

/// What `GET {path}` under `/console` answers; `None` when the path is not the console's.
pub fn lookup(path: &str) -> Option<Asset> {
    if path == "/console" {
        return Some(Asset {
            status: 308,
            content_type: "text/plain; charset=utf-8",
            cache: "no-cache",
            body: b"",
            location: Some("/console/"),
        });
    }
    let rel = path.strip_prefix("/console/")?;
    if rel.is_empty() || rel == "index.html" {
        return Some(index());
    }
    // Embedded names are plain; anything with `..`, `//` or a backslash names nothing.
    let plain = !rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
        && !rel.contains('\\')
        && !rel.contains('%');
    if plain && let Some(body) = find(rel) {
        let cache = if rel.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return Some(Asset {
            status: 200,
            content_type: content_type(rel),
            cache,
            body,
            location: None,
        });
    }
    let last = rel.rsplit('/').next().unwrap_or_default();
    if last.contains('.') || rel.starts_with("assets/") {
        return Some(Asset {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            cache: "no-cache",
            body: b"no such console file",
            location: None,
        });
    }
    // A page of the console's own routing.
    Some(index())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_redirect_fallback_and_404() {
        assert_eq!(lookup("/v1/rooms"), None);
        assert_eq!(lookup("/consoles"), None);
        let r = lookup("/console").unwrap();
        assert_eq!((r.status, r.location), (308, Some("/console/")));
        let i = lookup("/console/").unwrap();
        assert_eq!((i.status, i.cache), (200, "no-cache"));
        assert!(i.content_type.starts_with("text/html"));
        assert_eq!(lookup("/console/rooms/pk").unwrap().body, i.body);
        assert_eq!(lookup("/console/assets/nope-123.js").unwrap().status, 404);
        assert_eq!(lookup("/console/../Cargo.toml").unwrap().status, 404);
        assert_eq!(lookup("/console/x/%2e%2e/y.js").unwrap().status, 404);
    }

    #[test]
    fn built_assets_are_long_lived_with_their_type() {
        for (p, _) in assets::ASSETS
            .iter()
            .filter(|(p, _)| p.starts_with("assets/"))
        {
            let a = lookup(&format!("/console/{p}")).unwrap();
            assert_eq!(a.status, 200, "{p}");
            assert_eq!(a.cache, "public, max-age=31536000, immutable");
            if p.ends_with(".js") {
                assert!(a.content_type.starts_with("text/javascript"));
            }
        }
        assert_eq!(content_type("a/b.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
