//! Quarry's metadata filters as Qdrant filters with the same meaning, over
//! the payload layout of [`crate::payload`]: `And` is `must`, `Or` is
//! `should` (at least one), a leaf is a field condition, numbers are asked
//! of both the integer and the double field. Strings are always matched as
//! keywords (never as Qdrant's full-text match, which the client would
//! pick for a string with a space).

use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::{Condition, Filter as QFilter, Range};
use quarry_core::{Filter, MetaValue};

use crate::payload::{canonical_list, field};
use crate::wire::{matching, nested, range as ranging};

fn any_of(conditions: Vec<Condition>) -> Condition {
    if conditions.len() == 1 {
        if let Some(c) = conditions.into_iter().next() {
            return c;
        }
        return nested(QFilter::default());
    }
    nested(QFilter {
        should: conditions,
        ..Default::default()
    })
}

/// The condition that `key` equals `value` (as [`Filter::Equals`] means).
fn equals(key: &str, value: &MetaValue) -> Condition {
    match value {
        MetaValue::String(s) => matching(&field('s', key), MatchValue::Keyword(s.clone())),
        MetaValue::StringList(items) => {
            matching(&field('l', key), MatchValue::Keyword(canonical_list(items)))
        }
        MetaValue::Bool(b) => matching(&field('b', key), MatchValue::Boolean(*b)),
        MetaValue::Int(i) => any_of(vec![
            matching(&field('i', key), MatchValue::Integer(*i)),
            ranging(
                &field('d', key),
                Range {
                    gte: Some(*i as f64),
                    lte: Some(*i as f64),
                    ..Default::default()
                },
            ),
        ]),
        MetaValue::Double(d) => {
            let mut options = vec![ranging(
                &field('d', key),
                Range {
                    gte: Some(*d),
                    lte: Some(*d),
                    ..Default::default()
                },
            )];
            // An integer equals a double with no fraction.
            if d.fract() == 0.0 && d.abs() < 9.0e15 {
                options.push(matching(&field('i', key), MatchValue::Integer(*d as i64)));
            }
            any_of(options)
        }
    }
}

/// The Qdrant filter meaning what `filter` means (it has passed
/// [`Filter::validate`]: no empty And/Or).
pub fn filter_of(filter: &Filter) -> QFilter {
    match filter {
        Filter::And(parts) => QFilter {
            must: parts.iter().map(|p| nested(filter_of(p))).collect(),
            ..Default::default()
        },
        Filter::Or(parts) => QFilter {
            should: parts.iter().map(|p| nested(filter_of(p))).collect(),
            ..Default::default()
        },
        Filter::Equals { key, value } => QFilter {
            must: vec![equals(key, value)],
            ..Default::default()
        },
        Filter::In { key, values } => QFilter {
            must: vec![any_of(values.iter().map(|v| equals(key, v)).collect())],
            ..Default::default()
        },
        Filter::Range {
            key,
            gte,
            gt,
            lte,
            lt,
        } => {
            let range = Range {
                gte: *gte,
                gt: *gt,
                lte: *lte,
                lt: *lt,
            };
            QFilter {
                must: vec![any_of(vec![
                    ranging(&field('i', key), range),
                    ranging(&field('d', key), range),
                ])],
                ..Default::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdrant_client::qdrant::condition::ConditionOneOf;

    #[test]
    fn keys_are_hex_paths_and_strings_are_keywords() {
        assert_eq!(field('s', "a.b\"c"), "m.s_612e622263");
        let f = filter_of(&Filter::Equals {
            key: "k".into(),
            value: MetaValue::String("two words".into()),
        });
        let Some(ConditionOneOf::Field(c)) = &f.must[0].condition_one_of else {
            panic!("{f:?}");
        };
        assert_eq!(
            c.r#match.as_ref().and_then(|m| m.match_value.clone()),
            Some(MatchValue::Keyword("two words".into()))
        );
    }
}
