//! The checkable facts of a sentence: numbers (counts, amounts,
//! percentages, years, dates) and names (capitalised words, acronyms,
//! codes such as "A380" or "COVID-19"), normalised so that different
//! spellings of the same fact compare equal:
//! - "$5.5 trillion", "5.5 trillion" and "5,500 billion" are one value;
//! - "40 percent", "40 per cent" and "40%" are one percentage;
//! - thousands separators ("15,000", "15 000" with a non-breaking or thin
//!   space), Arabic-Indic and full-width digits, and every Unicode space;
//! - names compare case-insensitively, possessives removed ("Japan's").
//!
//! A [`FactSet`] holds everything a set of passages says, read generously
//! (each ambiguous spelling in all its readings, number words, every word),
//! and a generated sentence's facts, read strictly, must each be in it.
//! Citation markers (`[1]`) are not facts and are skipped.

use std::collections::HashSet;

/// One fact a sentence states.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// A number, with scale words applied ("5.5 trillion" is 5.5e12).
    Number {
        /// Its value (signs are ignored: "-5" and "5" are both 5).
        value: f64,
        /// Whether it is a percentage.
        percent: bool,
        /// Digits after the decimal point, as written.
        decimals: u8,
        /// An amount of money (a currency sign before it, or a currency
        /// word after it).
        money: bool,
        /// The word right after it, lower-cased ("km", "people"), if any.
        unit: Option<String>,
        /// As written.
        text: String,
    },
    /// A name, lower-cased, without a possessive "'s".
    Name {
        /// Lower-cased.
        norm: String,
        /// As written.
        text: String,
    },
}

impl Fact {
    /// The fact as written in the sentence.
    pub fn text(&self) -> &str {
        match self {
            Fact::Number { text, .. } | Fact::Name { text, .. } => text,
        }
    }
}

/// Every number and word some passages hold.
#[derive(Debug, Clone, Default)]
pub struct FactSet {
    numbers: Vec<(f64, bool)>,
    words: HashSet<String>,
}

const SCALES: &[(&str, f64)] = &[
    ("hundred", 1e2),
    ("thousand", 1e3),
    ("million", 1e6),
    ("millions", 1e6),
    ("billion", 1e9),
    ("billions", 1e9),
    ("trillion", 1e12),
    ("trillions", 1e12),
    ("bn", 1e9),
    ("mn", 1e6),
    ("tn", 1e12),
    ("lakh", 1e5),
    ("crore", 1e7),
];

/// Scale suffixes written right after an amount of money ("$5m").
const MONEY_SUFFIXES: &[(&str, f64)] = &[
    ("k", 1e3),
    ("m", 1e6),
    ("mn", 1e6),
    ("b", 1e9),
    ("bn", 1e9),
    ("t", 1e12),
    ("tn", 1e12),
];

const ORDINALS: &[&str] = &["st", "nd", "rd", "th"];

/// Number words that passages may use where a sentence writes digits.
const NUMBER_WORDS: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("thirteen", 13.0),
    ("fourteen", 14.0),
    ("fifteen", 15.0),
    ("sixteen", 16.0),
    ("seventeen", 17.0),
    ("eighteen", 18.0),
    ("nineteen", 19.0),
    ("twenty", 20.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("seventy", 70.0),
    ("eighty", 80.0),
    ("ninety", 90.0),
    ("hundred", 100.0),
    ("thousand", 1000.0),
    ("million", 1e6),
    ("billion", 1e9),
    ("trillion", 1e12),
    ("dozen", 12.0),
    ("first", 1.0),
    ("second", 2.0),
    ("third", 3.0),
    ("fourth", 4.0),
    ("fifth", 5.0),
    ("half", 0.5),
];

/// Capitalised words that say nothing checkable.
const NOT_NAMES: &[&str] = &["i", "a", "ok"];

/// Common first words of English sentences: capitalised because they come
/// first, not because they name something. Any other first word counts as
/// a name ("Beijing is...", "Japan's rate...").
const STARTERS: &[&str] = &[
    "the",
    "a",
    "an",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "there",
    "they",
    "their",
    "he",
    "she",
    "his",
    "her",
    "we",
    "our",
    "you",
    "your",
    "in",
    "on",
    "at",
    "for",
    "from",
    "by",
    "with",
    "as",
    "to",
    "of",
    "and",
    "but",
    "or",
    "so",
    "then",
    "here",
    "according",
    "yes",
    "no",
    "however",
    "also",
    "based",
    "while",
    "although",
    "though",
    "if",
    "when",
    "where",
    "what",
    "which",
    "who",
    "why",
    "how",
    "because",
    "after",
    "before",
    "during",
    "since",
    "until",
    "most",
    "many",
    "some",
    "each",
    "every",
    "all",
    "one",
    "both",
    "other",
    "such",
    "only",
    "just",
    "about",
    "around",
    "over",
    "under",
    "more",
    "less",
    "answer",
    "sure",
    "thus",
    "therefore",
    "today",
    "nearly",
    "almost",
    "not",
    "is",
    "are",
    "was",
    "were",
    "do",
    "does",
    "did",
    "can",
    "could",
    "would",
    "should",
    "will",
    "may",
    "might",
    "must",
    "has",
    "have",
    "had",
    "be",
    "being",
    "been",
    "my",
    "me",
    "i",
    "than",
    "among",
    "between",
    "into",
    "within",
    "without",
    "through",
    "above",
    "below",
    "up",
    "down",
    "out",
    "off",
    "again",
    "once",
    "first",
    "second",
    "third",
    "next",
    "last",
    "finally",
    "instead",
    "rather",
    "unlike",
    "like",
    "despite",
    "note",
    "overall",
    "please",
    "see",
    "let",
    "given",
    "using",
    "approximately",
    "roughly",
    "per",
];

fn is_currency(c: char) -> bool {
    matches!(
        c,
        '$' | '€' | '£' | '¥' | '₹' | '₩' | '₽' | '₺' | '₪' | '₫' | '฿'
    )
}

/// Spaces that group digits ("15 000"): no-break, figure, thin and narrow
/// no-break spaces.
fn is_group_space(c: char) -> bool {
    matches!(c, '\u{a0}' | '\u{2007}' | '\u{2009}' | '\u{202f}')
}

/// The text with digits in ASCII, every space a plain space, and digit
/// groups joined by commas.
fn normalise(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        let c = match c {
            '\u{660}'..='\u{669}' => char::from(b'0' + (c as u32 - 0x660) as u8),
            '\u{6f0}'..='\u{6f9}' => char::from(b'0' + (c as u32 - 0x6f0) as u8),
            '\u{ff10}'..='\u{ff19}' => char::from(b'0' + (c as u32 - 0xff10) as u8),
            '\u{66b}' => '.', // Arabic decimal separator
            '\u{66c}' => ',', // Arabic thousands separator
            '\u{ff05}' | '\u{66a}' => '%',
            c if is_group_space(c)
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) =>
            {
                ','
            }
            c if c.is_whitespace() => ' ',
            c => c,
        };
        out.push(c);
    }
    out
}

/// One number as scanned: where it ends, and its readings (the first is
/// the strict one).
struct Scanned {
    end: usize,
    readings: Vec<(f64, bool, u8)>,
    code: bool,
    money: bool,
    unit: Option<String>,
}

/// Currency words that make a number an amount of money.
const CURRENCY_WORDS: &[&str] = &[
    "dollar",
    "dollars",
    "usd",
    "euro",
    "euros",
    "eur",
    "pound",
    "pounds",
    "gbp",
    "yen",
    "yuan",
    "rupee",
    "rupees",
    "cent",
    "cents",
    "franc",
    "francs",
    "peso",
    "pesos",
    "won",
    "rubles",
    "ruble",
    "baht",
    "krona",
    "kronor",
    "krone",
    "kroner",
    "real",
    "reais",
    "rand",
    "dinar",
    "dinars",
    "dirham",
    "dirhams",
    "riyal",
    "riyals",
    "lira",
    "shilling",
    "shillings",
];

fn word_at(chars: &[char], mut i: usize) -> (String, usize) {
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    let start = i;
    while chars.get(i).is_some_and(|c| c.is_alphabetic()) {
        i += 1;
    }
    (chars[start..i].iter().collect::<String>().to_lowercase(), i)
}

/// Scans the number starting at `i` (a digit not inside a word).
fn scan_number(chars: &[char], i: usize) -> Scanned {
    let digits = |mut j: usize| {
        while chars.get(j).is_some_and(char::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    let mut j = digits(i);
    let mut int = text(i, j);
    // Thousands groups: ",ddd" not followed by another digit.
    let mut grouped = false;
    while chars.get(j) == Some(&',') && digits(j + 1) == j + 4 {
        int.push_str(&text(j + 1, j + 4));
        j += 4;
        grouped = true;
    }
    let mut frac = String::new();
    let mut alternates = Vec::new();
    if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
        let k = digits(j + 1);
        frac = text(j + 1, k);
        // "1.234" may be a European thousands group.
        if !grouped && frac.len() == 3 {
            alternates.push(format!("{int}{frac}"));
        }
        j = k;
    } else if !grouped && chars.get(j) == Some(&',') && matches!(digits(j + 1) - (j + 1), 1 | 2) {
        // "5,5 %": a decimal comma.
        let k = digits(j + 1);
        frac = text(j + 1, k);
        j = k;
    }
    if grouped {
        // "5,500" may be a European decimal ("5,500" = 5.5).
        let first = text(i, digits(i));
        let rest: String = int[first.len()..].to_string();
        alternates.push(format!("{first}.{rest}"));
    }
    let mut value: f64 = format!("{int}.{}", if frac.is_empty() { "0" } else { &frac })
        .parse()
        .unwrap_or(0.0);
    let decimals = frac.len().min(255) as u8;
    let mut alt_values: Vec<f64> = alternates.iter().filter_map(|a| a.parse().ok()).collect();

    // Letters right after the digits: an ordinal, a unit, a money scale,
    // or a code ("3D").
    let mut scale = 1.0;
    let suffix_end = {
        let mut k = j;
        while chars.get(k).is_some_and(|c| c.is_alphabetic()) {
            k += 1;
        }
        k
    };
    let suffix = text(j, suffix_end).to_lowercase();
    let money = i > 0 && is_currency(chars[i - 1]);
    let mut code = false;
    if !suffix.is_empty() {
        if money {
            if let Some((_, s)) = MONEY_SUFFIXES.iter().find(|(w, _)| *w == suffix) {
                scale = *s;
            }
        } else if !(ORDINALS.contains(&suffix.as_str()) || suffix.chars().count() <= 3) {
            code = true;
        }
        j = suffix_end;
    }
    let mut end = j;
    let mut percent = false;
    if scale == 1.0 {
        let (word, after) = word_at(chars, j);
        if let Some((_, s)) = SCALES.iter().find(|(w, _)| *w == word) {
            scale = *s;
            end = after;
        }
    }
    // A percentage: "%", "percent", "per cent", "pct", "percentage points".
    let mut k = end;
    while chars.get(k) == Some(&' ') {
        k += 1;
    }
    if chars.get(k) == Some(&'%') {
        percent = true;
        end = k + 1;
    } else {
        let (word, after) = word_at(chars, end);
        match word.as_str() {
            "percent" | "pct" | "percentage" => {
                percent = true;
                end = after;
            }
            "per" => {
                let (next, after2) = word_at(chars, after);
                if next == "cent" {
                    percent = true;
                    end = after2;
                }
            }
            _ => {}
        }
    }
    value *= scale;
    for v in &mut alt_values {
        *v *= scale;
    }
    let mut readings = vec![(value, percent, decimals)];
    readings.extend(alt_values.into_iter().map(|v| (v, percent, 0)));
    // The word after the number: its unit, or a currency.
    let unit = if percent {
        None
    } else if !suffix.is_empty() && scale == 1.0 && !ORDINALS.contains(&suffix.as_str()) {
        Some(suffix.clone())
    } else {
        let (word, _) = word_at(chars, end);
        (!word.is_empty()).then_some(word)
    };
    let money = money || unit.as_deref().is_some_and(|u| CURRENCY_WORDS.contains(&u));
    Scanned {
        end,
        readings,
        code,
        money,
        unit,
    }
}

/// Whether position `i` starts a number rather than continuing a word
/// ("A380", "COVID-19").
fn starts_number(chars: &[char], i: usize) -> bool {
    if !chars[i].is_ascii_digit() {
        return false;
    }
    match i.checked_sub(1).map(|p| chars[p]) {
        None => true,
        Some(p) if p.is_alphanumeric() => false,
        Some('-') => !(i >= 2 && chars[i - 2].is_alphabetic()),
        Some('.' | ',') => !(i >= 2 && chars[i - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

/// Removes citation markers ("[1]", "[2, 3]") so their numbers are not
/// read as facts.
pub fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if close <= 40
                    && !after[..close].trim().is_empty()
                    && after[..close]
                        .split(',')
                        .all(|n| n.trim().parse::<u32>().is_ok()) =>
            {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A word token: letters and digits with inner apostrophes, hyphens and
/// periods ("Japan's", "Coca-Cola", "U.S").
fn scan_word(chars: &[char], i: usize) -> usize {
    let mut j = i;
    while j < chars.len() {
        let c = chars[j];
        let inner = matches!(c, '\'' | '’' | '-' | '.')
            && chars.get(j + 1).is_some_and(|n| n.is_alphanumeric())
            && j > i;
        if c.is_alphanumeric() || inner {
            j += 1;
        } else {
            break;
        }
    }
    j
}

/// A word lower-cased without a possessive ending.
fn base_word(word: &str) -> String {
    let lower = word.to_lowercase();
    let lower = lower
        .strip_suffix("'s")
        .or_else(|| lower.strip_suffix("’s"))
        .unwrap_or(&lower)
        .to_owned();
    lower.trim_end_matches('.').to_owned()
}

/// The facts `sentence` states, read strictly: each number once, as
/// written; names are capitalised words (the first word of the sentence,
/// or after an opening quote, only when it is not a common sentence
/// opener such as "The" or "However"), acronyms, and codes mixing letters
/// and digits.
pub fn facts(sentence: &str) -> Vec<Fact> {
    let clean = strip_markers(sentence);
    let chars = normalise(&clean);
    let mut out = Vec::new();
    let mut i = 0;
    let mut first_word = true;
    while i < chars.len() {
        let c = chars[i];
        if starts_number(&chars, i) {
            let s = scan_number(&chars, i);
            let text: String = chars[i..s.end].iter().collect();
            if s.code {
                let end = scan_word(&chars, i);
                let word: String = chars[i..end].iter().collect();
                out.push(Fact::Name {
                    norm: base_word(&word),
                    text: word,
                });
                i = end;
            } else {
                let (value, percent, decimals) = s.readings[0];
                out.push(Fact::Number {
                    value,
                    percent,
                    decimals,
                    money: s.money,
                    unit: s.unit,
                    text: text.trim().to_owned(),
                });
                i = s.end.max(i + 1);
            }
            first_word = false;
            continue;
        }
        if c.is_alphanumeric() {
            let end = scan_word(&chars, i);
            let word: String = chars[i..end].iter().collect();
            let has_digit = word.chars().any(|c| c.is_ascii_digit());
            let upper = word.chars().filter(|c| c.is_uppercase()).count();
            let letters = word.chars().filter(|c| c.is_alphabetic()).count();
            let capitalised = word.chars().next().is_some_and(char::is_uppercase);
            let acronym = upper >= 2 && upper * 2 >= letters;
            let norm = base_word(&word);
            let name = if has_digit && letters > 0 {
                true
            } else if NOT_NAMES.contains(&norm.as_str()) {
                false
            } else if first_word {
                acronym
                    || (capitalised && !STARTERS.contains(&norm.as_str()) && !norm.ends_with("ly"))
            } else {
                capitalised || upper > 0
            };
            if name {
                out.push(Fact::Name { norm, text: word });
            }
            first_word = false;
            i = end;
            continue;
        }
        if matches!(c, '"' | '“' | '\n') {
            first_word = true;
        }
        i += 1;
    }
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl FactSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The facts of `texts`, read generously.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::new();
        for t in texts {
            set.add(t);
        }
        set
    }

    /// Adds everything `text` says: each number in all its readings (with
    /// and without its scale word, as a percentage and as a plain number),
    /// number words, and every word.
    pub fn add(&mut self, text: &str) {
        let chars = normalise(text);
        let mut i = 0;
        while i < chars.len() {
            if starts_number(&chars, i) {
                let s = scan_number(&chars, i);
                // The digits alone too: "5.5" of "5.5 trillion".
                let j = {
                    let mut k = i;
                    while chars
                        .get(k)
                        .is_some_and(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
                    {
                        k += 1;
                    }
                    k
                };
                let bare: String = chars[i..j]
                    .iter()
                    .filter(|c| **c != ',')
                    .collect::<String>()
                    .trim_end_matches('.')
                    .to_owned();
                if let Ok(v) = bare.parse::<f64>() {
                    self.numbers.push((v, false));
                }
                for (v, percent, _) in s.readings {
                    self.numbers.push((v, percent));
                    if percent {
                        self.numbers.push((v, false));
                    }
                }
                if s.code {
                    let end = scan_word(&chars, i);
                    self.add_word(&chars[i..end].iter().collect::<String>());
                    i = end;
                } else {
                    i = s.end.max(i + 1);
                }
                continue;
            }
            if chars[i].is_alphanumeric() {
                let end = scan_word(&chars, i);
                let word: String = chars[i..end].iter().collect();
                let norm = base_word(&word);
                if let Some((_, v)) = NUMBER_WORDS.iter().find(|(w, _)| *w == norm) {
                    self.numbers.push((*v, false));
                    // "twenty percent"
                    let (next, _) = word_at(&chars, end);
                    if next == "percent" {
                        self.numbers.push((*v, true));
                    }
                }
                self.add_word(&word);
                i = end;
                continue;
            }
            i += 1;
        }
    }

    fn add_word(&mut self, word: &str) {
        let norm = base_word(word);
        if norm.contains(['-', '.', '\'', '’']) {
            for part in norm.split(['-', '.', '\'', '’']).filter(|p| !p.is_empty()) {
                self.words.insert(part.to_owned());
            }
            // "U.S" also as "us".
            self.words.insert(norm.replace(['.', '\'', '’'], ""));
        }
        // Stems too, so that "Revenue" matches "revenues".
        self.words.insert(crate::terms::stem(&norm));
        // Web text decoded with the wrong charset turns "Rocko's" into
        // "Rockoâs": the Latin letters before the garbage are the word.
        let ascii: String = norm
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if ascii.len() >= 3 && ascii.len() < norm.len() && !norm.is_ascii() {
            self.words.insert(ascii);
        }
        self.words.insert(norm);
    }

    /// Whether the passages state `fact`. A number matches the same value
    /// (and percentage-ness), or one that rounds to it when it was written
    /// with decimals ("5.5" for 5.53); a name matches the same word or
    /// stem, or all the parts of a hyphenated or dotted one.
    pub fn contains(&self, fact: &Fact) -> bool {
        match fact {
            Fact::Number {
                value,
                percent,
                decimals,
                ..
            } => self.numbers.iter().any(|(v, p)| {
                *p == *percent
                    && (same_value(*v, *value)
                        || (*decimals >= 1 && {
                            let scale = 10f64.powi(*decimals as i32);
                            // Compare in the scale the number was written
                            // in: 5.53 trillion rounds to 5.5 trillion.
                            let magnitude = [1e12, 1e9, 1e6, 1e3, 1.0]
                                .into_iter()
                                .find(|m| value.abs() >= *m && *m > 1.0)
                                .unwrap_or(1.0);
                            same_value((v / magnitude * scale).round() / scale, value / magnitude)
                        }))
            }),
            Fact::Name { norm, .. } => {
                self.words.contains(norm)
                    || self.words.contains(&crate::terms::stem(norm))
                    || self.words.contains(&norm.replace(['.', '\'', '’'], ""))
                    || (norm.contains(['-', '.'])
                        && norm
                            .split(['-', '.'])
                            .filter(|p| !p.is_empty())
                            .all(|p| self.words.contains(p)))
            }
        }
    }

    /// The facts of `sentence` that are not in this set.
    pub fn missing(&self, sentence: &str) -> Vec<Fact> {
        facts(sentence)
            .into_iter()
            .filter(|f| !self.contains(f))
            .collect()
    }

    /// Whether `word` (any case) occurs.
    pub fn has_word(&self, word: &str) -> bool {
        self.words.contains(&base_word(word))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn numbers(text: &str) -> Vec<(f64, bool)> {
        facts(text)
            .into_iter()
            .filter_map(|f| match f {
                Fact::Number { value, percent, .. } => Some((value, percent)),
                Fact::Name { .. } => None,
            })
            .collect()
    }

    fn names(text: &str) -> Vec<String> {
        facts(text)
            .into_iter()
            .filter_map(|f| match f {
                Fact::Name { norm, .. } => Some(norm),
                Fact::Number { .. } => None,
            })
            .collect()
    }

    #[test]
    fn amounts_percentages_and_separators_normalise() {
        assert_eq!(numbers("revenue of $5.5 trillion"), [(5.5e12, false)]);
        assert_eq!(numbers("5.5 trillion dollars"), [(5.5e12, false)]);
        assert_eq!(numbers("up 40 percent"), [(40.0, true)]);
        assert_eq!(numbers("up 40%"), [(40.0, true)]);
        assert_eq!(numbers("up 40 per cent"), [(40.0, true)]);
        assert_eq!(numbers("15,000 lanterns"), [(15000.0, false)]);
        assert_eq!(numbers("15\u{202f}000 lanterns"), [(15000.0, false)]);
        assert_eq!(numbers("$5m and €3bn"), [(5e6, false), (3e9, false)]);
        assert_eq!(
            numbers("the 21st of May, 1999"),
            [(21.0, false), (1999.0, false)]
        );
        assert_eq!(numbers("١٩٨٤"), [(1984.0, false)]);
        assert_eq!(numbers("a 5,5 % rate"), [(5.5, true)]);
        assert_eq!(numbers("it is 640 m deep"), [(640.0, false)]);
        let f = facts("It cost $12 million, or 300 euros, for 54 boards.");
        let kinds: Vec<(bool, Option<&str>)> = f
            .iter()
            .filter_map(|f| match f {
                Fact::Number { money, unit, .. } => Some((*money, unit.as_deref())),
                Fact::Name { .. } => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [(true, None), (true, Some("euros")), (false, Some("boards"))]
        );
    }

    #[test]
    fn markers_codes_and_names() {
        assert_eq!(numbers("It was built in 1874 [1]."), [(1874.0, false)]);
        assert_eq!(
            names("The A380 and COVID-19 reached Japan's capital, Tokyo."),
            ["a380", "covid-19", "japan", "tokyo"]
        );
        // The first word of a sentence is not a name unless it is an
        // acronym; "I" never is.
        assert_eq!(
            names("The banks earned more. I think so."),
            Vec::<String>::new()
        );
        assert_eq!(names("Typically, it is. Beijing is big."), ["beijing"]);
        assert_eq!(names("NASA said so: Mars is red."), ["nasa", "mars"]);
    }

    #[test]
    fn passages_are_read_generously_sentences_strictly() {
        let set = FactSet::from_texts([
            "Banks' revenues after risk cost hit a record $5.5 trillion in 2024, up 40 percent.",
            "Unemployment in July 2025 was 2.3%; twelve regions reported.",
        ]);
        for ok in [
            "Revenue reached 5.5 trillion dollars in 2024 [1].",
            "It rose 40% [1].",
            "There were 12 regions.",
            "The rate in July was 2.3 percent.",
            "The rate was 2.3.",
        ] {
            assert!(set.missing(ok).is_empty(), "{ok}: {:?}", set.missing(ok));
        }
        for (bad, missing) in [
            ("Revenue hit 1.2 trillion dollars in 2024.", "1.2 trillion"),
            (
                "Japan's unemployment rate in August 2025 was 4.7%.",
                "Japan's",
            ),
            ("The capital city of Mongolia is Beijing.", "Mongolia"),
            ("It rose 40 points to 2.3% in 2026.", "2026"),
        ] {
            let m = set.missing(bad);
            assert!(m.iter().any(|f| f.text() == missing), "{bad}: {m:?}");
        }
        // Rounded figures written with decimals match; whole rounding does not.
        let set = FactSet::from_texts(["The ratio was 5.53 billion and 2.4 percent."]);
        assert!(set.missing("It was 5.5 billion.").is_empty());
        assert!(!set.missing("It was 2 percent.").is_empty());
    }

    #[test]
    fn mojibake_keeps_the_word_before_it() {
        let set = FactSet::from_texts(["We worked on Rockoâs Modern Life."]);
        assert!(
            set.missing("It was Rocko's Modern Life.").is_empty(),
            "{:?}",
            set.missing("It was Rocko's Modern Life.")
        );
    }

    #[test]
    fn thousands_and_european_readings() {
        let set = FactSet::from_texts(["a fee of 1.234 euros and 5,500 people"]);
        for ok in ["1234 euros", "1.234 euros", "5500 people", "5,500 people"] {
            assert!(set.missing(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn markers_are_stripped_but_other_brackets_kept() {
        assert_eq!(strip_markers("a [1] b [2, 3]"), "a  b ");
        assert_eq!(strip_markers("see [note] and [x"), "see [note] and [x");
    }

    proptest! {
        #[test]
        fn every_spelling_of_a_number_matches(
            int in 0u64..10_000_000, frac in proptest::option::of(0u32..100),
            scale in 0usize..4, percent in any::<bool>(), group in any::<bool>(),
        ) {
            let digits = int.to_string();
            let grouped: String = {
                let mut out = String::new();
                for (i, c) in digits.chars().enumerate() {
                    if i > 0 && (digits.len() - i) % 3 == 0 {
                        out.push(',');
                    }
                    out.push(c);
                }
                out
            };
            let frac_text = frac.map(|f| format!(".{f:02}")).unwrap_or_default();
            let scale_word = ["", " million", " billion", " trillion"][scale];
            let written = format!("{}{frac_text}{scale_word}{}", if group { &grouped } else { &digits }, if percent { "%" } else { "" });
            let other = format!("{digits}{frac_text}{scale_word}{}", if percent { " percent" } else { "" });
            let passage = format!("The figure was {other} last year.");
            let sentence = format!("It was {written} [1].");
            let set = FactSet::from_texts([passage.as_str()]);
            prop_assert!(set.missing(&sentence).is_empty(), "{} vs {}", sentence, passage);
            // A different number never matches.
            let wrong = format!("It was {}{frac_text}{scale_word}.", int + 7);
            prop_assert!(!set.missing(&wrong).is_empty(), "{} vs {}", wrong, passage);
        }

        #[test]
        fn facts_never_panic(text in ".{0,200}") {
            let _ = facts(&text);
            let mut set = FactSet::new();
            set.add(&text);
            let _ = set.missing(&text);
        }

        #[test]
        fn a_text_supports_its_own_facts(text in "([A-Z][a-z]{0,6}|[0-9]{1,5}([.,][0-9]{1,3})?|%| |\\$|-|'s|\\.|,){0,40}") {
            let set = FactSet::from_texts([text.as_str()]);
            prop_assert!(set.missing(&text).is_empty(), "{:?}: {:?}", text, set.missing(&text));
        }
    }
}
