//! Collecting validation problems: every invalid field is reported at once, each naming the
//! field and what is allowed, so a user fixes a preset or a request in one round.

use std::fmt;

/// One invalid value: which field, and what is wrong with it including the allowed range.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the problems found in one value, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Accumulates problems under a field path (`slots[2].w`).
#[derive(Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Checks `lo <= v <= hi` (and that `v` is a number at all).
    pub fn range_f64(&mut self, field: impl Into<String>, v: f64, lo: f64, hi: f64) {
        if !(v.is_finite() && v >= lo && v <= hi) {
            self.fail(field, format!("{v} is out of range (allowed {lo}..={hi})"));
        }
    }

    pub fn range_u32(&mut self, field: impl Into<String>, v: u32, lo: u32, hi: u32) {
        if v < lo || v > hi {
            self.fail(field, format!("{v} is out of range (allowed {lo}..={hi})"));
        }
    }

    pub fn even(&mut self, field: impl Into<String>, v: u32) {
        if !v.is_multiple_of(2) {
            self.fail(
                field,
                format!("{v} must be even (4:2:0 video needs even sizes)"),
            );
        }
    }

    /// Names used in URLs and file names: `[A-Za-z0-9_-]{1,64}`.
    pub fn name(&mut self, field: impl Into<String>, v: &str) {
        if !is_valid_name(v) {
            self.fail(
                field,
                format!("{v:?} is not a valid name (allowed: 1 to 64 of A-Z a-z 0-9 _ -)"),
            );
        }
    }

    pub fn nest(&mut self, prefix: &str, inner: Invalid) {
        for e in inner.0 {
            self.errors.push(FieldError {
                field: format!("{prefix}.{}", e.field),
                message: e.message,
            });
        }
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.errors))
        }
    }
}

/// Ids of rooms, seats, outputs and preset names: `[A-Za-z0-9_-]{1,64}`. Safe in paths and URLs.
pub fn is_valid_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_problem() {
        let mut c = Checker::new();
        c.range_f64("a", 2.0, 0.0, 1.0);
        c.range_f64("b", f64::NAN, 0.0, 1.0);
        c.even("c", 3);
        c.name("d", "../etc");
        let e = c.finish().unwrap_err();
        assert_eq!(e.0.len(), 4);
        let s = e.to_string();
        assert!(s.contains("a: 2 is out of range (allowed 0..=1)"), "{s}");
        assert!(s.contains("d: \"../etc\" is not a valid name"), "{s}");
    }

    #[test]
    fn names() {
        assert!(is_valid_name("room-1_A"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(&"x".repeat(65)));
        assert!(!is_valid_name("é"));
    }
}
