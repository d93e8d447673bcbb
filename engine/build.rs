//! Embeds the operator console (`console/dist`, built by `make console`: `npm ci` and
//! `vite build` in `console/`) into the binary: writes `$OUT_DIR/console_assets.rs`, a table
//! of `(path, bytes)` with `include_bytes!` of every built file.
//!
//! Without a build (a fresh clone and plain `cargo build`), the table holds one page saying
//! how to build the console, and cargo prints a warning: the engine builds and runs either way.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, p));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let console = manifest.join("../console");
    let dist = console.join("dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("console_assets.rs");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        walk(&dist, &dist, &mut files);
        files.sort();
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        println!(
            "cargo:warning=console/dist is not built: /console/ will only say how to build it \
             (run `make console`, or `make build`/`make run`/`make test`, which do)"
        );
        // Notices the build appearing (console/ changes when dist/ is created).
        println!("cargo:rerun-if-changed={}", console.display());
    }
    let mut src = String::from(
        "/// The console's built files: (path under /console/, contents).\n\
         pub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        src.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    src.push_str("];\n");
    src.push_str(&format!("pub const BUILT: bool = {};\n", !files.is_empty()));
    std::fs::write(&out, src).expect("write console_assets.rs");
}
