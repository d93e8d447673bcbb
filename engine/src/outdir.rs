//! Where `file` and `record` outputs may write: under the data directory or one of the
//! configured output roots, with the path resolved as the kernel will resolve it (`..` refused,
//! symlinks followed), so an API token holder cannot make the engine write elsewhere.
//!
//! Plain Rust on `std::fs`; the API layer turns the errors into 422s.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The directories outputs may write under, canonical (absolute, symlinks resolved). The first
/// is the data directory: relative output directories resolve under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRoots {
    roots: Vec<PathBuf>,
}

impl OutputRoots {
    /// Creates `data_dir` when missing and resolves it and every extra root. An extra root that
    /// does not exist is an error: a typo there would otherwise refuse every output silently.
    pub fn prepare(data_dir: &Path, extra: &[PathBuf]) -> Result<OutputRoots, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("data_dir {}: cannot create it: {e}", data_dir.display()))?;
        let mut roots = vec![
            data_dir
                .canonicalize()
                .map_err(|e| format!("data_dir {}: {e}", data_dir.display()))?,
        ];
        for r in extra {
            let c = r.canonicalize().map_err(|e| {
                format!(
                    "output_roots: {}: {e} (each root must be an existing directory)",
                    r.display()
                )
            })?;
            if !c.is_dir() {
                return Err(format!("output_roots: {} is not a directory", r.display()));
            }
            if !roots.contains(&c) {
                roots.push(c);
            }
        }
        Ok(OutputRoots { roots })
    }

    /// The data directory, canonical.
    pub fn data_dir(&self) -> &Path {
        &self.roots[0]
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn allowed(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves an output directory as given in the API: relative paths go under the data
    /// directory; the result, with every existing component's symlinks resolved, must lie
    /// under one of the roots. The directory itself need not exist yet (the output creates it).
    pub fn resolve(&self, dir: &str) -> Result<PathBuf, String> {
        let p = Path::new(dir);
        if dir.is_empty() {
            return Err(format!(
                "must not be empty (allowed: a directory under {})",
                self.allowed()
            ));
        }
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(format!(
                "{dir:?} contains '..' (allowed: a directory under {})",
                self.allowed()
            ));
        }
        let full = if p.is_relative() {
            self.data_dir().join(p)
        } else {
            p.to_owned()
        };
        let resolved = resolve_existing_prefix(&full)
            .map_err(|e| format!("{}: cannot be resolved: {e}", full.display()))?;
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            let shown = if resolved == full {
                full.display().to_string()
            } else {
                format!("{} (resolves to {})", full.display(), resolved.display())
            };
            return Err(format!(
                "{shown} is outside the allowed output roots (allowed under: {})",
                self.allowed()
            ));
        }
        Ok(resolved)
    }
}

/// `path` with its longest existing prefix canonicalised (symlinks resolved) and the rest,
/// which does not exist yet and so cannot be a link, appended as given.
fn resolve_existing_prefix(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_owned()) else {
                    return Err(e);
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, OutputRoots) {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let extra = t.path().join("media");
        std::fs::create_dir(&extra).unwrap();
        let roots = OutputRoots::prepare(&data, std::slice::from_ref(&extra)).unwrap();
        (t, roots)
    }

    #[test]
    fn creates_the_data_dir_and_resolves_relative_dirs_under_it() {
        let (t, roots) = setup();
        let data = t.path().join("data").canonicalize().unwrap();
        assert_eq!(roots.data_dir(), data);
        assert_eq!(roots.resolve("rec/a").unwrap(), data.join("rec/a"));
        let media = t.path().join("media").canonicalize().unwrap();
        let abs = media.join("x");
        assert_eq!(roots.resolve(abs.to_str().unwrap()).unwrap(), abs);
    }

    #[test]
    fn refuses_dot_dot_absolute_paths_outside_and_empty() {
        let (_t, roots) = setup();
        for bad in ["../escape", "a/../../b", "/etc", "/tmp", ""] {
            let e = roots.resolve(bad).unwrap_err();
            assert!(
                e.contains(&roots.data_dir().display().to_string()),
                "{bad:?}: {e}"
            );
        }
        assert!(roots.resolve("/etc").unwrap_err().contains("outside"));
    }

    #[test]
    fn follows_symlinks_out_of_the_roots() {
        let (t, roots) = setup();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, roots.data_dir().join("link")).unwrap();
        let e = roots.resolve("link/rec").unwrap_err();
        assert!(e.contains("resolves to"), "{e}");
        assert!(e.contains("outside the allowed output roots"), "{e}");
        // A link that stays inside is fine, and the resolved path is what gets written.
        let inner = roots.data_dir().join("real");
        std::fs::create_dir(&inner).unwrap();
        std::os::unix::fs::symlink(&inner, roots.data_dir().join("alias")).unwrap();
        assert_eq!(roots.resolve("alias/x").unwrap(), inner.join("x"));
    }

    #[test]
    fn a_root_path_that_is_itself_a_prefix_string_is_not_enough() {
        // /…/data-evil starts with the string "/…/data" but is not under it.
        let (t, roots) = setup();
        let evil = t.path().join("data-evil");
        let e = roots.resolve(evil.to_str().unwrap()).unwrap_err();
        assert!(e.contains("outside"), "{e}");
    }

    #[test]
    fn missing_extra_roots_are_named() {
        let t = tempfile::tempdir().unwrap();
        let e = OutputRoots::prepare(&t.path().join("d"), &[t.path().join("nope")]).unwrap_err();
        assert!(e.contains("output_roots") && e.contains("nope"), "{e}");
    }
}
