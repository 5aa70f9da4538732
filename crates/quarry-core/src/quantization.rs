//! How a collection's dense index holds its vectors in memory: as 32-bit
//! floats, or as 8-bit codes that the search walks the graph with before
//! it rescores the best candidates with the floats. Fixed when the
//! collection is created.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::InvalidArgument;

/// A collection's vector quantisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 32-bit floats only (the default).
    #[default]
    None,
    /// Scalar quantisation: one signed byte per dimension, with a scale and
    /// an offset per vector; searches rescore their candidates with the
    /// floats, which stay on disk (memory-mapped) rather than in memory.
    Int8,
}

impl Quantization {
    /// Every choice, in the order the error lists them.
    pub const ALL: [Quantization; 2] = [Quantization::None, Quantization::Int8];

    /// The name clients send and see.
    pub fn code(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
        }
    }

    /// Parses a name (any case); the error names `field` and the choices.
    pub fn parse_field(s: &str, field: &str) -> Result<Self, InvalidArgument> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|q| q.code() == t)
            .ok_or_else(|| {
                InvalidArgument::new(
                    field,
                    format!(
                        "{:?} is not a quantisation; choose none or int8",
                        crate::error::capped(s, 40)
                    ),
                )
            })
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Quantization {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_field(s, "quantization")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_others_are_refused_by_field() {
        assert_eq!(
            Quantization::parse_field(" INT8 ", "f").unwrap(),
            Quantization::Int8
        );
        assert_eq!(
            Quantization::parse_field("none", "f").unwrap(),
            Quantization::None
        );
        let err = Quantization::parse_field("int4", "settings.quantization").unwrap_err();
        assert_eq!(err.field, "settings.quantization");
        assert!(err.reason.contains("none or int8"), "{err}");
        let long = "x".repeat(5000);
        assert!(
            Quantization::parse_field(&long, "f")
                .unwrap_err()
                .to_string()
                .len()
                < 200
        );
        // Stored settings read back the same.
        let json = serde_json::to_string(&Quantization::Int8).unwrap();
        assert_eq!(json, "\"int8\"");
        assert_eq!(
            serde_json::from_str::<Quantization>(&json).unwrap(),
            Quantization::Int8
        );
    }
}
