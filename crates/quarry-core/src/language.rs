//! The language of a collection's text: which keyword analyzer indexes and
//! searches it. Fixed when the collection is created.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidArgument;

/// A collection's language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Language {
    /// Arabic (Snowball stemmer).
    Arabic,
    /// Danish.
    Danish,
    /// Dutch.
    Dutch,
    /// English: the default.
    #[default]
    English,
    /// Finnish.
    Finnish,
    /// French.
    French,
    /// German.
    German,
    /// Greek.
    Greek,
    /// Hungarian.
    Hungarian,
    /// Italian.
    Italian,
    /// Norwegian.
    Norwegian,
    /// Portuguese.
    Portuguese,
    /// Romanian.
    Romanian,
    /// Russian.
    Russian,
    /// Spanish.
    Spanish,
    /// Swedish.
    Swedish,
    /// Tamil.
    Tamil,
    /// Turkish.
    Turkish,
    /// Lower-cased words, no stemming: any language written with spaces.
    Simple,
    /// Chinese, Japanese and Korean: ideographs and kana as overlapping
    /// character pairs (no dictionary), other text as words.
    Cjk,
}

impl Language {
    /// Every language, in the order the choices are listed.
    pub const ALL: [Language; 20] = [
        Self::Arabic,
        Self::Danish,
        Self::Dutch,
        Self::English,
        Self::Finnish,
        Self::French,
        Self::German,
        Self::Greek,
        Self::Hungarian,
        Self::Italian,
        Self::Norwegian,
        Self::Portuguese,
        Self::Romanian,
        Self::Russian,
        Self::Spanish,
        Self::Swedish,
        Self::Tamil,
        Self::Turkish,
        Self::Simple,
        Self::Cjk,
    ];

    /// The code used in settings and records: ISO 639-1 (`ar`, `en`...),
    /// `simple` or `cjk`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Arabic => "ar",
            Self::Danish => "da",
            Self::Dutch => "nl",
            Self::English => "en",
            Self::Finnish => "fi",
            Self::French => "fr",
            Self::German => "de",
            Self::Greek => "el",
            Self::Hungarian => "hu",
            Self::Italian => "it",
            Self::Norwegian => "no",
            Self::Portuguese => "pt",
            Self::Romanian => "ro",
            Self::Russian => "ru",
            Self::Spanish => "es",
            Self::Swedish => "sv",
            Self::Tamil => "ta",
            Self::Turkish => "tr",
            Self::Simple => "simple",
            Self::Cjk => "cjk",
        }
    }

    /// The English name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arabic => "arabic",
            Self::Danish => "danish",
            Self::Dutch => "dutch",
            Self::English => "english",
            Self::Finnish => "finnish",
            Self::French => "french",
            Self::German => "german",
            Self::Greek => "greek",
            Self::Hungarian => "hungarian",
            Self::Italian => "italian",
            Self::Norwegian => "norwegian",
            Self::Portuguese => "portuguese",
            Self::Romanian => "romanian",
            Self::Russian => "russian",
            Self::Spanish => "spanish",
            Self::Swedish => "swedish",
            Self::Tamil => "tamil",
            Self::Turkish => "turkish",
            Self::Simple => "simple",
            Self::Cjk => "cjk",
        }
    }

    /// Parses a code or a name (any case); `zh`, `ja` and `ko` are `cjk`.
    /// The error names `field` and lists the choices.
    pub fn parse_field(s: &str, field: &str) -> Result<Self, InvalidArgument> {
        let t = s.trim().to_ascii_lowercase();
        if matches!(
            t.as_str(),
            "zh" | "ja" | "ko" | "chinese" | "japanese" | "korean"
        ) {
            return Ok(Self::Cjk);
        }
        Self::ALL
            .into_iter()
            .find(|l| l.code() == t || l.name() == t)
            .ok_or_else(|| {
                let choices: Vec<&str> = Self::ALL.iter().map(|l| l.code()).collect();
                InvalidArgument::new(
                    field,
                    format!(
                        "{:?} is not a supported language; choose one of {}",
                        crate::error::capped(s, 40),
                        choices.join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_field(s, "language")
    }
}

impl From<Language> for String {
    fn from(l: Language) -> Self {
        l.code().to_owned()
    }
}

impl TryFrom<String> for Language {
    type Error = InvalidArgument;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_parse_and_unknown_ones_list_the_choices() {
        for l in Language::ALL {
            assert_eq!(l.code().parse::<Language>().unwrap(), l);
            assert_eq!(l.name().to_uppercase().parse::<Language>().unwrap(), l);
        }
        assert_eq!("ja".parse::<Language>().unwrap(), Language::Cjk);
        let err = Language::parse_field("klingon", "settings.language").unwrap_err();
        assert_eq!(err.field, "settings.language");
        assert!(err.reason.contains("ar, da, nl, en"), "{err}");
        assert_eq!(serde_json::to_string(&Language::Arabic).unwrap(), "\"ar\"");
    }
}
