//! Beauty settings for a seat: the levels the `showmixbeauty` element takes. All levels at 0
//! (`off`) leave the picture untouched.

use serde::{Deserialize, Serialize};

use super::validate::{Checker, Invalid};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contrast {
    Low,
    #[default]
    Normal,
    High,
}

impl Contrast {
    pub fn as_str(&self) -> &'static str {
        match self {
            Contrast::Low => "low",
            Contrast::Normal => "normal",
            Contrast::High => "high",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beauty {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Skin smoothing, 0..1.
    #[serde(default)]
    pub smoothness: f64,
    /// Brightening tone curve, 0..1.
    #[serde(default)]
    pub lightening: f64,
    #[serde(default)]
    pub lightening_contrast: Contrast,
    /// Warmer, rosier skin, 0..1.
    #[serde(default)]
    pub redness: f64,
    /// Unsharp masking outside skin, 0..1.
    #[serde(default)]
    pub sharpness: f64,
    /// Restrict smoothing and redness to skin.
    #[serde(default = "yes")]
    pub skin_mask: bool,
}

fn yes() -> bool {
    true
}

impl Default for Beauty {
    fn default() -> Self {
        Self {
            name: "off".into(),
            description: String::new(),
            smoothness: 0.0,
            lightening: 0.0,
            lightening_contrast: Contrast::Normal,
            redness: 0.0,
            sharpness: 0.0,
            skin_mask: true,
        }
    }
}

impl Beauty {
    /// True when the filter would not change a pixel: the seat needs no filter at all.
    pub fn is_off(&self) -> bool {
        self.smoothness == 0.0
            && self.lightening == 0.0
            && self.redness == 0.0
            && self.sharpness == 0.0
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new();
        c.range_f64("smoothness", self.smoothness, 0.0, 1.0);
        c.range_f64("lightening", self.lightening, 0.0, 1.0);
        c.range_f64("redness", self.redness, 0.0, 1.0);
        c.range_f64("sharpness", self.sharpness, 0.0, 1.0);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let b = Beauty {
            smoothness: 1.5,
            redness: -0.1,
            ..Default::default()
        };
        let e = b.validate().unwrap_err().to_string();
        assert!(
            e.contains("smoothness: 1.5 is out of range (allowed 0..=1)"),
            "{e}"
        );
        assert!(e.contains("redness: -0.1 is out of range"), "{e}");
        assert!(Beauty::default().is_off());
    }
}
