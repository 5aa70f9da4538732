//! Redaction of personal data in stored records (`--redact-records`):
//! e-mail addresses, card-like numbers (13 to 19 digits that pass the Luhn
//! check) and phone-like numbers become `[email]`, `[card]` and `[phone]`
//! in the question, answer and prompt that are stored. What the client
//! sees streamed is not changed.

use std::sync::OnceLock;

use regex::Regex;

fn patterns() -> &'static (Regex, Regex, Regex) {
    static P: OnceLock<(Regex, Regex, Regex)> = OnceLock::new();
    P.get_or_init(|| {
        (
            Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
                .expect("valid"),
            // Digit runs with single spaces or dashes between groups.
            Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("valid"),
            Regex::new(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}")
                .expect("valid"),
        )
    })
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `text` with e-mail addresses, card numbers and phone numbers replaced.
pub fn redact(text: &str) -> String {
    let (email, card, phone) = patterns();
    let text = email.replace_all(text, "[email]");
    let text = card.replace_all(&text, |c: &regex::Captures| {
        let digits: Vec<u32> = c[0].chars().filter_map(|ch| ch.to_digit(10)).collect();
        if luhn(&digits) {
            "[card]".to_owned()
        } else {
            c[0].to_owned()
        }
    });
    phone
        .replace_all(&text, |c: &regex::Captures| {
            // At least 8 digits, and not an ISO date: years, prices,
            // counts and dates stay.
            let m = &c[0];
            let date = m.len() == 10
                && m.as_bytes()[4] == b'-'
                && m.as_bytes()[7] == b'-'
                && m.chars().filter(char::is_ascii_digit).count() == 8;
            if !date && m.chars().filter(char::is_ascii_digit).count() >= 8 {
                "[phone]".to_owned()
            } else {
                c[0].to_owned()
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_replaced_and_the_rest_kept() {
        let text = "Mail jane.doe+x@mail.example.co.uk or call +44 20 7946 0958; \
                    card 4111 1111 1111 1111 (and 1234 5678 9012 3456 fails Luhn). \
                    In 1998 it cost 1,250 euros; call 555-0100.";
        let out = redact(text);
        assert!(!out.contains("jane.doe"), "{out}");
        assert!(
            out.contains("[email]") && out.contains("[card]") && out.contains("[phone]"),
            "{out}"
        );
        assert!(!out.contains("4111"), "{out}");
        assert!(out.contains("In 1998 it cost 1,250 euros"), "{out}");
        assert!(out.contains("555-0100"), "short numbers stay: {out}");
        assert_eq!(redact("on 2026-11-27"), "on 2026-11-27");
        assert_eq!(redact("nothing to hide"), "nothing to hide");
    }
}
