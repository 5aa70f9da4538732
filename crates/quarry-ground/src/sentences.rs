//! A sentence segmenter for passages and model output.
//!
//! Unicode's sentence boundaries (UAX #29) break after every "Dr." and
//! "J." before a capital and know nothing of lines, so list items and
//! headings run into the next sentence. This splitter works in two steps:
//! lines first (blank lines, list items and headings end a unit; wrapped
//! prose lines are joined), then sentence ends inside each unit: a
//! terminal mark, optional closing quotes or brackets, white space, and a
//! next sentence that does not start in lower case, unless the word before
//! the period is an abbreviation, an initial, or a label such as "No."
//! before a number. Decimals ("5.5"), versions and addresses never break
//! because a break needs white space after the mark. Ideographic full
//! stops break at once (Chinese and Japanese use no spaces).
//!
//! The result is byte spans into the original text, so that a quoted
//! sentence is verbatim.

use std::ops::Range;

/// What a span of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SentenceKind {
    /// A sentence of running text.
    Sentence,
    /// The first sentence of a list item (its marker included).
    ListItem,
    /// A heading: a Markdown `#` line, or a short unpunctuated line
    /// standing above text.
    Heading,
}

/// One sentence: a byte range of the text it came from, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is.
    pub kind: SentenceKind,
}

impl Span {
    /// The sentence's text in `source` (the text that was split).
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.start..self.end]
    }

    /// Its byte range.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Sentences longer than this many bytes are split further at semicolons,
/// so that one run-on "sentence" does not become a whole paragraph of
/// evidence.
const LONG_SENTENCE_BYTES: usize = 600;

/// Words after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "col", "lt", "sgt", "capt",
    "rev", "hon", "gov", "sen", "rep", "pres", "fr", "messrs", "mme", "mlle", "vs", "cf", "approx",
    "ca", "av", "ave", "blvd", "rd", "dept", "univ", "assn", "bros", "nr", "esp", "resp", "incl",
    "e.g", "i.e", "viz", "al",
];

/// Labels whose period does not end a sentence when a number follows
/// ("No. 5", "Fig. 3", "Jan. 12").
const NUMBER_LABELS: &[&str] = &[
    "no", "nos", "fig", "figs", "p", "pp", "vol", "vols", "art", "sec", "ch", "chap", "eq", "ref",
    "tab", "op", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "n", "nr",
];

fn is_terminal(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | '…' | '؟' | '۔' | '।' | '。' | '！' | '？'
    )
}

/// Marks that end a sentence with no space after them.
fn is_ideographic_terminal(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»' | '›' | '」' | '』' | '）'
    )
}

/// Splits `text` into sentences, list items and headings, in order.
pub fn split(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for unit in units(text) {
        let first = out.len();
        let skip = if unit.kind == SentenceKind::ListItem {
            marker_len(&text[unit.range.clone()])
        } else {
            0
        };
        split_unit(text, unit.range.clone(), skip, &mut out);
        if let Some(s) = out.get_mut(first) {
            if unit.kind != SentenceKind::Sentence {
                s.kind = unit.kind;
            }
        }
        if unit.kind == SentenceKind::Heading {
            // A heading is one span, whatever its punctuation.
            out.truncate(first);
            if let Some(span) = trimmed(text, unit.range) {
                out.push(Span {
                    kind: SentenceKind::Heading,
                    ..span
                });
            }
        }
    }
    out
}

/// A run of lines that sentences cannot cross.
struct Unit {
    range: Range<usize>,
    kind: SentenceKind,
}

/// Whether a line (without its indentation) starts a list item: a bullet,
/// or a number or letter followed by "." or ")" and a space.
fn is_list_item(line: &str) -> bool {
    let mut chars = line.chars();
    match chars.next() {
        Some('-' | '*' | '•' | '–' | '+' | '·' | '▪' | '◦') => {
            return chars.next().is_some_and(char::is_whitespace);
        }
        None => return false,
        _ => {}
    }
    let head: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
    let rest = if !head.is_empty() && head.len() <= 3 {
        &line[head.len()..]
    } else if line.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && line[1..].starts_with(')')
    {
        &line[1..]
    } else {
        return false;
    };
    let mut rest = rest.chars();
    matches!(rest.next(), Some('.' | ')')) && rest.next().is_some_and(char::is_whitespace)
}

/// Bytes of a list item's marker ("- ", "12. ", "a) "), leading white
/// space included.
fn marker_len(line: &str) -> usize {
    let body = line.trim_start();
    let lead = line.len() - body.len();
    let end = body
        .char_indices()
        .find(|(_, c)| c.is_whitespace())
        .map_or(body.len(), |(i, _)| i);
    lead + end
}

fn is_markdown_heading(line: &str) -> bool {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with([' ', '\t'])
}

/// A line that may be a heading when text follows it: short, with no
/// closing punctuation.
fn heading_like(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty()
        && line.split_whitespace().count() <= 12
        && line.len() <= 120
        && !line.ends_with(|c: char| is_terminal(c) || matches!(c, ',' | ';' | ':' | '-'))
        && line.chars().next().is_some_and(|c| !c.is_lowercase())
}

fn units(text: &str) -> Vec<Unit> {
    let mut units = Vec::new();
    // The unit being built: its range, kind, and how many lines it has.
    let mut current: Option<(Range<usize>, SentenceKind, usize)> = None;
    let mut offset = 0;
    let flush = |current: &mut Option<(Range<usize>, SentenceKind, usize)>,
                 units: &mut Vec<Unit>| {
        if let Some((range, kind, _)) = current.take() {
            units.push(Unit { range, kind });
        }
    };
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let end = start + line.len();
        let body = line.trim_start();
        if body.trim().is_empty() {
            flush(&mut current, &mut units);
            continue;
        }
        if is_markdown_heading(body) {
            flush(&mut current, &mut units);
            units.push(Unit {
                range: start..end,
                kind: SentenceKind::Heading,
            });
            continue;
        }
        if is_list_item(body) {
            flush(&mut current, &mut units);
            current = Some((start..end, SentenceKind::ListItem, 1));
            continue;
        }
        match current.as_mut() {
            Some((range, kind, lines)) => {
                // A short unpunctuated first line over a capitalised line
                // is a heading ("Results\nThe company grew...").
                let previous = &text[range.clone()];
                if *lines == 1
                    && *kind == SentenceKind::Sentence
                    && heading_like(previous)
                    && body.chars().next().is_some_and(char::is_uppercase)
                {
                    *kind = SentenceKind::Heading;
                    flush(&mut current, &mut units);
                    current = Some((start..end, SentenceKind::Sentence, 1));
                } else {
                    range.end = end;
                    *lines += 1;
                }
            }
            None => current = Some((start..end, SentenceKind::Sentence, 1)),
        }
    }
    flush(&mut current, &mut units);
    units
}

/// `range` without surrounding white space, or `None` when nothing is left.
fn trimmed(text: &str, range: Range<usize>) -> Option<Span> {
    let s = &text[range.clone()];
    let lead = s.len() - s.trim_start().len();
    let body = s.trim();
    (!body.is_empty()).then(|| Span {
        start: range.start + lead,
        end: range.start + lead + body.len(),
        kind: SentenceKind::Sentence,
    })
}

/// The word just before byte `dot`: letters, digits and inner periods,
/// as written.
fn word_before(text: &str, dot: usize) -> &str {
    let before = &text[..dot];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    before[start..].trim_matches('.')
}

/// Whether the period at byte `dot` (a lone '.') is part of an
/// abbreviation rather than a sentence end, given the next sentence's
/// first character.
fn abbreviation_period(text: &str, dot: usize, next: char) -> bool {
    let original = word_before(text, dot);
    if original.is_empty() {
        return false;
    }
    let word = original.to_lowercase();
    let mut letters = original.chars();
    // An initial: "J. R. R. Tolkien".
    if let (Some(first), None) = (letters.next(), letters.next()) {
        if first.is_alphabetic() && first.is_uppercase() {
            return true;
        }
    }
    // "U.S.", "a.m.", "Ph.D." carry periods inside.
    if word.contains('.') {
        return word.len() <= 6;
    }
    if ABBREVIATIONS.contains(&word.as_str()) {
        return true;
    }
    next.is_ascii_digit() && NUMBER_LABELS.contains(&word.as_str())
}

/// Web text often loses the space after a period ("from your
/// vets.Generally, shop..."): a period between a lower-case word (or a
/// closing bracket) and a capitalised word is a sentence end, while
/// "U.S.A", "ASP.NET", "node.js" and decimals are not.
fn run_together(s: &str, dot: usize, after: usize) -> bool {
    let before = s[..dot].chars().next_back();
    let mut next = s[after..].chars();
    let (a, b) = (next.next(), next.next());
    let word_before = word_before(s, dot);
    matches!(before, Some(c) if c.is_lowercase() || c == ')')
        && (word_before.chars().count() >= 2 || before == Some(')'))
        && a.is_some_and(char::is_uppercase)
        && b.is_some_and(char::is_lowercase)
}

/// Sentence ends inside one unit.
/// The first `skip` bytes (a list marker) hold no sentence end.
fn split_unit(text: &str, unit: Range<usize>, skip: usize, out: &mut Vec<Span>) {
    let s = &text[unit.clone()];
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if i < skip || !is_terminal(c) {
            continue;
        }
        // The whole run of marks and closers: "?!", "...", ".)\"".
        let mut end = i + c.len_utf8();
        let mut lone_period = c == '.';
        let mut ideographic = is_ideographic_terminal(c);
        while let Some(&(j, d)) = chars.peek() {
            if is_terminal(d) || is_closing(d) {
                if is_terminal(d) {
                    lone_period = false;
                    ideographic |= is_ideographic_terminal(d);
                }
                end = j + d.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let rest = &s[end..];
        let next = rest.trim_start().chars().next();
        let spaced = rest.starts_with(char::is_whitespace);
        let boundary = match next {
            None => true,
            Some(_) if ideographic => true,
            Some(_) if !spaced => lone_period && run_together(s, i, end),
            Some(n) if n.is_lowercase() => false,
            Some(n) => !(lone_period && abbreviation_period(s, i, n)),
        };
        if boundary {
            push_sentence(text, unit.start + start..unit.start + end, out);
            start = end;
        }
    }
    push_sentence(text, unit.start + start..unit.end, out);
}

/// Adds one sentence, split at semicolons when it is very long.
fn push_sentence(text: &str, range: Range<usize>, out: &mut Vec<Span>) {
    let Some(span) = trimmed(text, range) else {
        return;
    };
    if span.end - span.start <= LONG_SENTENCE_BYTES {
        out.push(span);
        return;
    }
    let body = &text[span.range()];
    let mut start = 0;
    for (i, _) in body.match_indices("; ") {
        if i - start >= LONG_SENTENCE_BYTES / 4 {
            if let Some(part) = trimmed(text, span.start + start..span.start + i + 1) {
                out.push(part);
            }
            start = i + 2;
        }
    }
    if let Some(part) = trimmed(text, span.start + start..span.end) {
        out.push(part);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        split(text).iter().map(|s| s.text(text)).collect()
    }

    #[test]
    fn sentences_end_at_marks_before_a_new_sentence() {
        assert_eq!(
            texts("The mine is 640 m deep. It closed in 1921! Why? Nobody knows..."),
            [
                "The mine is 640 m deep.",
                "It closed in 1921!",
                "Why?",
                "Nobody knows..."
            ]
        );
        // Lower case after a period is not a new sentence (messy web text,
        // "e.g. the").
        assert_eq!(
            texts("Revenue rose, e.g. the retail arm grew. Costs fell."),
            ["Revenue rose, e.g. the retail arm grew.", "Costs fell."]
        );
        assert_eq!(
            texts("He said \"stop.\" Then he left."),
            ["He said \"stop.\"", "Then he left."]
        );
    }

    #[test]
    fn abbreviations_initials_and_decimals_do_not_break() {
        assert_eq!(
            texts("Dr. Smith met J. R. R. Tolkien in the U.S. in 1950. They talked."),
            [
                "Dr. Smith met J. R. R. Tolkien in the U.S. in 1950.",
                "They talked."
            ]
        );
        assert_eq!(
            texts("Revenue hit $5.5 trillion, up 3.2% (see Fig. 4). Margins held at 12.5."),
            [
                "Revenue hit $5.5 trillion, up 3.2% (see Fig. 4).",
                "Margins held at 12.5."
            ]
        );
        assert_eq!(
            texts("It opened on Jan. 12 at 9 a.m. Visitors came."),
            ["It opened on Jan. 12 at 9 a.m. Visitors came."]
        );
        assert_eq!(
            texts("Ask your vets.Generally, shop treatments fail (TE).The end. Use ASP.NET or node.js."),
            [
                "Ask your vets.",
                "Generally, shop treatments fail (TE).",
                "The end.",
                "Use ASP.NET or node.js."
            ]
        );
        assert_eq!(
            texts("Version 2.1.3 shipped. See example.com for more."),
            ["Version 2.1.3 shipped.", "See example.com for more."]
        );
    }

    #[test]
    fn list_items_and_headings_are_their_own_units() {
        let text = "# Results\nSales grew in 2024\nacross every region.\n\nHighlights:\n- Revenue: $5.5 trillion\n- Margin up 40 percent\n1. First step. Then more\n2) Second step\n\nOutlook\nThe outlook is stable.";
        let spans = split(text);
        let got: Vec<(&str, SentenceKind)> = spans.iter().map(|s| (s.text(text), s.kind)).collect();
        use SentenceKind::*;
        assert_eq!(
            got,
            [
                ("# Results", Heading),
                ("Sales grew in 2024\nacross every region.", Sentence),
                ("Highlights:", Sentence),
                ("- Revenue: $5.5 trillion", ListItem),
                ("- Margin up 40 percent", ListItem),
                ("1. First step.", ListItem),
                ("Then more", Sentence),
                ("2) Second step", ListItem),
                ("Outlook", Heading),
                ("The outlook is stable.", Sentence),
            ]
        );
    }

    #[test]
    fn other_scripts_split_too() {
        assert_eq!(texts("今天下雨。明天晴天！"), ["今天下雨。", "明天晴天！"]);
        assert_eq!(
            texts("ما هي عاصمة مصر؟ القاهرة هي العاصمة."),
            ["ما هي عاصمة مصر؟", "القاهرة هي العاصمة."]
        );
    }

    #[test]
    fn long_run_on_sentences_split_at_semicolons() {
        let clause = "the figures were revised upward again by the statistics office";
        let text = format!("{clause}; {clause}; {clause}; {clause}; {clause}; {clause}; {clause}; {clause}; {clause}; {clause}.");
        let spans = split(&text);
        assert!(spans.len() > 1, "{spans:?}");
        assert!(spans.iter().all(|s| s.end - s.start <= LONG_SENTENCE_BYTES));
    }

    #[test]
    fn empty_and_blank_texts_have_no_sentences() {
        assert!(split("").is_empty());
        assert!(split(" \n\n\t ").is_empty());
        assert_eq!(texts("no mark at all"), ["no mark at all"]);
    }

    proptest! {
        #[test]
        fn spans_are_ordered_trimmed_and_cover_every_visible_character(
            text in "([A-Za-z]{1,8}|[0-9]{1,4}|[.!?;:,]|\\.\\.\\.|\\$|%| |\n|\n\n|- |1\\. |# |Dr\\. |U\\.S\\. |\"|\\)|é|。){0,60}"
        ) {
            let spans = split(&text);
            let mut covered = vec![false; text.len()];
            let mut last_end = 0;
            for s in &spans {
                prop_assert!(s.start < s.end);
                prop_assert!(s.start >= last_end);
                prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
                let t = s.text(&text);
                prop_assert_eq!(t, t.trim());
                for c in covered.iter_mut().take(s.end).skip(s.start) {
                    *c = true;
                }
                last_end = s.end;
            }
            for (i, c) in text.char_indices() {
                if !c.is_whitespace() {
                    prop_assert!(covered[i], "{:?} at {} is in no span of {:?}", c, i, text);
                }
            }
        }

        #[test]
        fn decimals_are_never_split(
            a in 0u32..10000, b in 0u32..1000,
            before in "[A-Za-z ]{0,20}", after in "[A-Za-z ]{0,20}",
        ) {
            let number = format!("{a}.{b}");
            let text = format!("{before} {number} {after}");
            let spans = split(&text);
            prop_assert!(spans.iter().any(|s| s.text(&text).contains(&number)));
        }
    }
}
