//! Presets: layouts, ladders and beauty settings as TOML, embedded in the binary so showmix
//! works from any directory, and overridable from a user presets directory
//! (`<dir>/layouts/*.toml`, `<dir>/ladders/*.toml`, `<dir>/beauty/*.toml`; a user file with
//! the same name as an embedded one replaces it).
//!
//! Everything here is plain Rust: parsing and validation need no GStreamer.

pub mod beauty;
pub mod ladder;
pub mod layout;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use beauty::Beauty;
pub use ladder::Ladder;
pub use layout::Layout;
pub use validate::{FieldError, Invalid};

use serde::de::DeserializeOwned;

/// The three kinds of preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Layout,
    Ladder,
    Beauty,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Layout => "layout",
            Kind::Ladder => "ladder",
            Kind::Beauty => "beauty",
        }
    }

    fn dir(&self) -> &'static str {
        match self {
            Kind::Layout => "layouts",
            Kind::Ladder => "ladders",
            Kind::Beauty => "beauty",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("unknown {kind} preset {name:?} (available: {available})")]
    Unknown {
        kind: &'static str,
        name: String,
        available: String,
    },
    #[error("{origin}: not valid TOML for a {kind}: {message}")]
    Parse {
        kind: &'static str,
        origin: String,
        message: String,
    },
    #[error("{origin}: invalid {kind}: {errors}")]
    Invalid {
        kind: &'static str,
        origin: String,
        errors: Invalid,
    },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

macro_rules! embedded {
    ($($dir:literal / $name:literal),* $(,)?) => {
        &[$(($dir, $name, include_str!(concat!("../../../presets/", $dir, "/", $name, ".toml")))),*]
    };
}

/// (directory, name, TOML) of every preset shipped in the binary.
pub const EMBEDDED: &[(&str, &str, &str)] = embedded![
    "layouts" / "single",
    "layouts" / "pk",
    "layouts" / "cohost",
    "layouts" / "grid-4",
    "layouts" / "grid-9",
    "layouts" / "matchmaking-3",
    "layouts" / "matchmaking-7",
    "layouts" / "pip-1v1",
    "ladders" / "showroom-720p",
    "ladders" / "showroom-1080p",
    "ladders" / "portrait-720p",
    "beauty" / "off",
    "beauty" / "natural",
    "beauty" / "showroom",
];

/// A validated set of presets, by name.
#[derive(Clone, Debug, Default)]
pub struct Presets {
    pub layouts: BTreeMap<String, Layout>,
    pub ladders: BTreeMap<String, Ladder>,
    pub beauty: BTreeMap<String, Beauty>,
}

trait Named {
    fn set_name(&mut self, name: &str);
    fn check(&self) -> Result<(), Invalid>;
}

impl Named for Layout {
    fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
    }
    fn check(&self) -> Result<(), Invalid> {
        self.validate()
    }
}

impl Named for Ladder {
    fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
    }
    fn check(&self) -> Result<(), Invalid> {
        self.validate()
    }
}

impl Named for Beauty {
    fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
    }
    fn check(&self) -> Result<(), Invalid> {
        self.validate()
    }
}

fn parse<T: DeserializeOwned + Named>(
    kind: Kind,
    name: &str,
    origin: &str,
    text: &str,
) -> Result<T, PresetError> {
    let mut v: T = toml::from_str(text).map_err(|e| PresetError::Parse {
        kind: kind.as_str(),
        origin: origin.to_owned(),
        message: e.message().to_owned(),
    })?;
    v.set_name(name);
    v.check().map_err(|errors| PresetError::Invalid {
        kind: kind.as_str(),
        origin: origin.to_owned(),
        errors,
    })?;
    Ok(v)
}

fn read(path: &Path) -> Result<String, PresetError> {
    std::fs::read_to_string(path).map_err(|source| PresetError::Io {
        path: path.to_owned(),
        source,
    })
}

/// True when a preset argument names a file rather than a preset.
fn is_file_arg(arg: &str) -> bool {
    arg.ends_with(".toml") || arg.contains('/')
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Presets {
    /// The embedded presets only.
    pub fn embedded() -> Result<Presets, PresetError> {
        let mut p = Presets::default();
        for (dir, name, text) in EMBEDDED {
            p.insert(dir, name, &format!("embedded {dir}/{name}.toml"), text)?;
        }
        Ok(p)
    }

    /// The embedded presets, then every `*.toml` under `user_dir`'s `layouts/`, `ladders/`
    /// and `beauty/` (replacing embedded presets of the same name).
    pub fn load(user_dir: Option<&Path>) -> Result<Presets, PresetError> {
        let mut p = Presets::embedded()?;
        let Some(root) = user_dir else {
            return Ok(p);
        };
        for kind in [Kind::Layout, Kind::Ladder, Kind::Beauty] {
            let dir = root.join(kind.dir());
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(PresetError::Io { path: dir, source }),
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let name = file_stem(&path);
                let text = read(&path)?;
                p.insert(kind.dir(), &name, &path.display().to_string(), &text)?;
            }
        }
        Ok(p)
    }

    fn insert(
        &mut self,
        dir: &str,
        name: &str,
        origin: &str,
        text: &str,
    ) -> Result<(), PresetError> {
        if !validate::is_valid_name(name) {
            return Err(PresetError::Parse {
                kind: "preset",
                origin: origin.to_owned(),
                message: format!(
                    "file name {name:?} is not a valid preset name (allowed: A-Z a-z 0-9 _ -)"
                ),
            });
        }
        match dir {
            "layouts" => {
                self.layouts
                    .insert(name.into(), parse(Kind::Layout, name, origin, text)?);
            }
            "ladders" => {
                self.ladders
                    .insert(name.into(), parse(Kind::Ladder, name, origin, text)?);
            }
            _ => {
                self.beauty
                    .insert(name.into(), parse(Kind::Beauty, name, origin, text)?);
            }
        }
        Ok(())
    }

    fn unknown<T>(kind: Kind, name: &str, map: &BTreeMap<String, T>) -> PresetError {
        PresetError::Unknown {
            kind: kind.as_str(),
            name: name.to_owned(),
            available: map.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }

    /// A layout by preset name, or from a TOML file when the argument is a path.
    pub fn layout(&self, arg: &str) -> Result<Layout, PresetError> {
        if is_file_arg(arg) {
            let path = Path::new(arg);
            return parse(Kind::Layout, &file_stem(path), arg, &read(path)?);
        }
        self.layouts
            .get(arg)
            .cloned()
            .ok_or_else(|| Self::unknown(Kind::Layout, arg, &self.layouts))
    }

    /// A ladder by preset name, or from a TOML file when the argument is a path.
    pub fn ladder(&self, arg: &str) -> Result<Ladder, PresetError> {
        if is_file_arg(arg) {
            let path = Path::new(arg);
            return parse(Kind::Ladder, &file_stem(path), arg, &read(path)?);
        }
        self.ladders
            .get(arg)
            .cloned()
            .ok_or_else(|| Self::unknown(Kind::Ladder, arg, &self.ladders))
    }

    /// A beauty preset by name.
    pub fn beauty(&self, name: &str) -> Result<Beauty, PresetError> {
        self.beauty
            .get(name)
            .cloned()
            .ok_or_else(|| Self::unknown(Kind::Beauty, name, &self.beauty))
    }

    /// The TOML text of a preset of any kind, for `showmix presets show`.
    pub fn show(&self, name: &str) -> Result<String, PresetError> {
        let text = if let Some(l) = self.layouts.get(name) {
            toml::to_string_pretty(l)
        } else if let Some(l) = self.ladders.get(name) {
            toml::to_string_pretty(l)
        } else if let Some(b) = self.beauty.get(name) {
            toml::to_string_pretty(b)
        } else {
            let mut all: Vec<String> = self.layouts.keys().cloned().collect();
            all.extend(self.ladders.keys().cloned());
            all.extend(self.beauty.keys().cloned());
            return Err(PresetError::Unknown {
                kind: "any",
                name: name.to_owned(),
                available: all.join(", "),
            });
        };
        Ok(text.unwrap_or_else(|e| format!("# cannot print: {e}\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Rect;

    fn presets() -> Presets {
        Presets::embedded().expect("embedded presets are valid")
    }

    const LANDSCAPE: (u32, u32) = (1280, 720);
    const PORTRAIT: (u32, u32) = (720, 1280);

    #[test]
    fn every_file_in_presets_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets");
        for dir in ["layouts", "ladders", "beauty"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = file_stem(&e.unwrap().path());
                assert!(
                    EMBEDDED.iter().any(|(d, n, _)| *d == dir && *n == name),
                    "presets/{dir}/{name}.toml is not in EMBEDDED"
                );
            }
        }
    }

    /// Every tile of every layout lies on the canvas, is even-aligned and non-empty, on both
    /// orientations.
    #[test]
    fn every_layout_fits_landscape_and_portrait() {
        let p = presets();
        assert_eq!(p.layouts.len(), 8);
        for (name, l) in &p.layouts {
            for (w, h) in [LANDSCAPE, PORTRAIT, (1920, 1080), (640, 360)] {
                for (i, t) in l.tiles(w, h).iter().enumerate() {
                    let r = t.rect;
                    assert!(!r.is_empty(), "{name} slot {i} empty on {w}x{h}");
                    assert!(r.x >= 0 && r.y >= 0, "{name} slot {i}");
                    assert!(
                        r.x + r.w <= w as i32 && r.y + r.h <= h as i32,
                        "{name} slot {i} {r:?}"
                    );
                    assert!(
                        r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0,
                        "{name} {r:?}"
                    );
                }
            }
        }
    }

    fn rects(l: &Layout, (w, h): (u32, u32)) -> Vec<Rect> {
        l.tiles(w, h).iter().map(|t| t.rect).collect()
    }

    #[test]
    fn single_fills_canvas() {
        let l = presets().layout("single").unwrap();
        assert_eq!(rects(&l, LANDSCAPE), [Rect::new(0, 0, 1280, 720)]);
        assert_eq!(rects(&l, PORTRAIT), [Rect::new(0, 0, 720, 1280)]);
    }

    #[test]
    fn pk_halves() {
        let l = presets().layout("pk").unwrap();
        assert_eq!(
            rects(&l, LANDSCAPE),
            [Rect::new(0, 0, 640, 720), Rect::new(640, 0, 640, 720)]
        );
        assert_eq!(
            rects(&l, (1920, 1080)),
            [Rect::new(0, 0, 960, 1080), Rect::new(960, 0, 960, 1080)]
        );
        // Portrait: side by side, 3:4 each, in the upper part.
        let p = rects(&l, PORTRAIT);
        assert_eq!(p[0], Rect::new(0, 192, 360, 480));
        assert_eq!(p[1], Rect::new(360, 192, 360, 480));
    }

    #[test]
    fn cohost_tiles_float_on_right_edge_above_host() {
        let l = presets().layout("cohost").unwrap();
        for dims in [LANDSCAPE, PORTRAIT] {
            let t = l.tiles(dims.0, dims.1);
            assert_eq!(t.len(), 4);
            assert_eq!(t[0].rect, Rect::new(0, 0, dims.0 as i32, dims.1 as i32));
            for w in t[1..].windows(2) {
                assert!(
                    w[0].rect.y + w[0].rect.h <= w[1].rect.y,
                    "stacked without overlap"
                );
            }
            for c in &t[1..] {
                assert!(c.z > t[0].z, "co-hosts draw above the host");
                assert!(c.rect.x > dims.0 as i32 / 2, "on the right");
                assert!(
                    dims.0 as i32 - (c.rect.x + c.rect.w) < dims.0 as i32 / 20,
                    "near the edge"
                );
            }
        }
    }

    #[test]
    fn grids_are_row_major() {
        let l = presets().layout("grid-4").unwrap();
        assert_eq!(
            rects(&l, LANDSCAPE),
            [
                Rect::new(0, 0, 640, 360),
                Rect::new(640, 0, 640, 360),
                Rect::new(0, 360, 640, 360),
                Rect::new(640, 360, 640, 360)
            ]
        );
        assert_eq!(
            rects(&l, PORTRAIT),
            [
                Rect::new(0, 0, 360, 640),
                Rect::new(360, 0, 360, 640),
                Rect::new(0, 640, 360, 640),
                Rect::new(360, 640, 360, 640)
            ]
        );
        let g9 = rects(&presets().layout("grid-9").unwrap(), LANDSCAPE);
        assert_eq!(g9.len(), 9);
        for (i, r) in g9.iter().enumerate() {
            let (row, col) = (i / 3, i % 3);
            assert_eq!(r.x == 0, col == 0);
            assert_eq!(r.y == 0, row == 0);
            if col > 0 {
                assert_eq!(g9[i - 1].x + g9[i - 1].w, r.x, "columns meet");
            }
            if row > 0 {
                assert_eq!(g9[i - 3].y + g9[i - 3].h, r.y, "rows meet");
            }
        }
        assert_eq!(g9[8].x + g9[8].w, 1280);
        assert_eq!(g9[8].y + g9[8].h, 720);
    }

    #[test]
    fn matchmaking_layouts() {
        let p = presets();
        let m3 = rects(&p.layout("matchmaking-3").unwrap(), LANDSCAPE);
        assert_eq!(m3[0], Rect::new(320, 0, 640, 360), "host top centre");
        assert_eq!(m3[1], Rect::new(0, 360, 640, 360));
        assert_eq!(m3[2], Rect::new(640, 360, 640, 360));
        let m7 = p.layout("matchmaking-7").unwrap();
        assert_eq!(m7.slot_count(), 7);
        for dims in [LANDSCAPE, PORTRAIT] {
            let r = rects(&m7, dims);
            // No two tiles overlap.
            for i in 0..r.len() {
                for j in i + 1..r.len() {
                    let (a, b) = (r[i], r[j]);
                    let apart = a.x + a.w <= b.x
                        || b.x + b.w <= a.x
                        || a.y + a.h <= b.y
                        || b.y + b.h <= a.y;
                    assert!(apart, "{dims:?}: slot {i} {a:?} overlaps slot {j} {b:?}");
                }
            }
            // The host tile is the largest.
            let area = |r: &Rect| r.w * r.h;
            assert!(r[1..].iter().all(|g| area(g) < area(&r[0])));
        }
    }

    #[test]
    fn pip_corner_tile() {
        let t = presets().layout("pip-1v1").unwrap().tiles(1280, 720);
        assert_eq!(t[0].rect, Rect::new(0, 0, 1280, 720));
        assert!(t[1].z > t[0].z);
        assert!(t[1].rect.x > 640 && t[1].rect.y < 100);
        assert!(t[1].rect.w < 400);
    }

    #[test]
    fn shipped_ladders() {
        let p = presets();
        let l = p.ladder("showroom-720p").unwrap();
        assert_eq!(
            (l.canvas.width, l.canvas.height, l.canvas.fps),
            (1280, 720, 30)
        );
        let rungs: Vec<(&str, u32, u32, u32)> = l
            .rungs
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height, r.bitrate_kbps))
            .collect();
        assert_eq!(
            rungs,
            [
                ("720p", 1280, 720, 2500),
                ("480p", 854, 480, 1200),
                ("360p", 640, 360, 600)
            ]
        );
        assert_eq!(l.audio.bitrate_kbps, 128);
        assert_eq!(l.gop_frames(), 30);
        let l = p.ladder("showroom-1080p").unwrap();
        assert_eq!(l.top_rung().unwrap().name, "1080p");
        assert_eq!((l.canvas.width, l.canvas.height), (1920, 1080));
        let l = p.ladder("portrait-720p").unwrap();
        assert_eq!((l.canvas.width, l.canvas.height), (720, 1280));
        let dims: Vec<(u32, u32)> = l.rungs.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(dims, [(720, 1280), (480, 854), (360, 640)]);
    }

    #[test]
    fn shipped_beauty() {
        let p = presets();
        assert!(p.beauty("off").unwrap().is_off());
        let n = p.beauty("natural").unwrap();
        let s = p.beauty("showroom").unwrap();
        assert!(!n.is_off());
        assert!(s.smoothness > n.smoothness);
    }

    #[test]
    fn unknown_preset_lists_the_available_ones() {
        let e = presets().layout("nope").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown layout preset \"nope\" (available: cohost, grid-4"),
            "{e}"
        );
        let e = presets().ladder("nope").unwrap_err().to_string();
        assert!(e.contains("showroom-720p"), "{e}");
    }

    #[test]
    fn user_dir_overrides_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layouts")).unwrap();
        std::fs::write(
            dir.path().join("layouts/single.toml"),
            "background = \"#ff0000\"\n[[slots]]\nx = 0.1\ny = 0.1\nw = 0.8\nh = 0.8\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("layouts/duo.toml"),
            "[[slots]]\nx = 0.0\ny = 0.0\nw = 1.0\nh = 0.5\n[[slots]]\nx = 0.0\ny = 0.5\nw = 1.0\nh = 0.5\nfit = \"contain\"\n",
        )
        .unwrap();
        let p = Presets::load(Some(dir.path())).unwrap();
        assert_eq!(p.layout("single").unwrap().slots[0].x, 0.1);
        assert_eq!(p.layout("duo").unwrap().slot_count(), 2);
    }

    #[test]
    fn invalid_user_file_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(
            &f,
            "[[slots]]\nx = 0.0\ny = 0.0\nw = 2.0\nh = 1.0\nalpha = 3\n",
        )
        .unwrap();
        let e = presets()
            .layout(f.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.toml: invalid layout: slots[0].w: 2 is out of range"),
            "{e}"
        );
        assert!(
            e.contains("slots[0].alpha: 3 is out of range (allowed 0..=1)"),
            "{e}"
        );
        let e = presets()
            .layout("/nonexistent/x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.toml: cannot read"), "{e}");
        std::fs::write(&f, "slots = 3").unwrap();
        let e = presets()
            .ladder(f.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid TOML for a ladder"), "{e}");
    }

    #[test]
    fn show_prints_toml() {
        let t = presets().show("pk").unwrap();
        assert!(t.contains("[[slots]]"));
        assert!(presets().show("nope").is_err());
    }
}
