//! Metadata filters: the tree a client sends (AND, OR, equality, in-set,
//! numeric range), its validation, and its evaluation against a document's
//! metadata. Both retrievers use [`Filter::matches`] so that a filter means
//! the same thing everywhere.

use serde::{Deserialize, Serialize};

use crate::{InvalidArgument, MetaValue, Metadata};

/// Deepest nesting of AND/OR a filter may have.
pub const MAX_FILTER_DEPTH: usize = 8;
/// Most leaf clauses and values in one filter.
pub const MAX_FILTER_CLAUSES: usize = 256;

/// A metadata filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Every sub-filter matches.
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The key's value equals `value` (for a string list: any element does).
    Equals {
        /// Metadata key.
        key: String,
        /// The value.
        value: MetaValue,
    },
    /// The key's value equals one of `values`.
    In {
        /// Metadata key.
        key: String,
        /// Accepted values.
        values: Vec<MetaValue>,
    },
    /// The key holds a number within the bounds (unset bounds are open).
    Range {
        /// Metadata key.
        key: String,
        /// Inclusive lower bound.
        gte: Option<f64>,
        /// Exclusive lower bound.
        gt: Option<f64>,
        /// Inclusive upper bound.
        lte: Option<f64>,
        /// Exclusive upper bound.
        lt: Option<f64>,
    },
}

/// Whether two scalar values are equal, numbers compared as numbers.
fn scalar_eq(a: &MetaValue, b: &MetaValue) -> bool {
    match (a, b) {
        (MetaValue::String(x), MetaValue::String(y)) => x == y,
        (MetaValue::Bool(x), MetaValue::Bool(y)) => x == y,
        (MetaValue::Int(x), MetaValue::Int(y)) => x == y,
        (MetaValue::Int(_) | MetaValue::Double(_), MetaValue::Int(_) | MetaValue::Double(_)) => {
            as_number(a) == as_number(b)
        }
        _ => false,
    }
}

fn as_number(v: &MetaValue) -> Option<f64> {
    match v {
        MetaValue::Int(i) => Some(*i as f64),
        MetaValue::Double(d) => Some(*d),
        _ => None,
    }
}

/// Whether a stored value matches a wanted scalar: a string list matches
/// when any element equals it.
fn value_matches(stored: &MetaValue, wanted: &MetaValue) -> bool {
    match (stored, wanted) {
        (MetaValue::StringList(items), MetaValue::String(w)) => items.iter().any(|i| i == w),
        (MetaValue::StringList(a), MetaValue::StringList(b)) => a == b,
        _ => scalar_eq(stored, wanted),
    }
}

impl Filter {
    /// Whether `metadata` satisfies the filter. A missing key never
    /// matches a leaf.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.matches_with(&|key: &str| metadata.get(key))
    }

    /// [`Self::matches`] over metadata held in another layout: `get`
    /// returns a key's value (the indexes keep a compact sorted slice).
    pub fn matches_with<'m>(&self, get: &dyn Fn(&str) -> Option<&'m MetaValue>) -> bool {
        match self {
            Self::And(parts) => parts.iter().all(|f| f.matches_with(get)),
            Self::Or(parts) => parts.iter().any(|f| f.matches_with(get)),
            Self::Equals { key, value } => get(key).is_some_and(|v| value_matches(v, value)),
            Self::In { key, values } => {
                get(key).is_some_and(|v| values.iter().any(|w| value_matches(v, w)))
            }
            Self::Range {
                key,
                gte,
                gt,
                lte,
                lt,
            } => {
                let Some(x) = get(key).and_then(as_number) else {
                    return false;
                };
                gte.is_none_or(|b| x >= b)
                    && gt.is_none_or(|b| x > b)
                    && lte.is_none_or(|b| x <= b)
                    && lt.is_none_or(|b| x < b)
            }
        }
    }

    /// Checks the filter's shape; `field` is where it sits in the request
    /// (e.g. `filter`), so errors name the exact clause.
    pub fn validate(&self, field: &str) -> Result<(), InvalidArgument> {
        let mut clauses = 0;
        self.validate_at(field, 1, &mut clauses)
    }

    fn validate_at(
        &self,
        field: &str,
        depth: usize,
        clauses: &mut usize,
    ) -> Result<(), InvalidArgument> {
        if depth > MAX_FILTER_DEPTH {
            return Err(InvalidArgument::new(
                field,
                format!("nests deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        let mut count = |n: usize| {
            *clauses += n;
            if *clauses > MAX_FILTER_CLAUSES {
                Err(InvalidArgument::new(
                    field,
                    format!("has more than {MAX_FILTER_CLAUSES} clauses and values"),
                ))
            } else {
                Ok(())
            }
        };
        let check_key = |key: &str| {
            if key.is_empty() {
                Err(InvalidArgument::new(
                    format!("{field}.key"),
                    "must not be empty",
                ))
            } else if key.contains('\0') {
                Err(InvalidArgument::new(
                    format!("{field}.key"),
                    "must not contain NUL characters",
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Self::And(parts) | Self::Or(parts) => {
                let which = if matches!(self, Self::And(_)) {
                    "and"
                } else {
                    "or"
                };
                if parts.is_empty() {
                    return Err(InvalidArgument::new(
                        format!("{field}.{which}"),
                        "needs at least one sub-filter",
                    ));
                }
                for (i, p) in parts.iter().enumerate() {
                    p.validate_at(&format!("{field}.{which}[{i}]"), depth + 1, clauses)?;
                }
                Ok(())
            }
            Self::Equals { key, value } => {
                check_key(key)?;
                count(1)?;
                check_value(&format!("{field}.value"), value)
            }
            Self::In { key, values } => {
                check_key(key)?;
                if values.is_empty() {
                    return Err(InvalidArgument::new(
                        format!("{field}.values"),
                        "needs at least one value",
                    ));
                }
                count(values.len())?;
                for (i, v) in values.iter().enumerate() {
                    check_value(&format!("{field}.values[{i}]"), v)?;
                }
                Ok(())
            }
            Self::Range {
                key,
                gte,
                gt,
                lte,
                lt,
            } => {
                check_key(key)?;
                count(1)?;
                let bounds = [("gte", gte), ("gt", gt), ("lte", lte), ("lt", lt)];
                if bounds.iter().all(|(_, b)| b.is_none()) {
                    return Err(InvalidArgument::new(
                        field,
                        "a range needs at least one bound",
                    ));
                }
                for (name, b) in bounds {
                    if b.is_some_and(|b| !b.is_finite()) {
                        return Err(InvalidArgument::new(
                            format!("{field}.{name}"),
                            "must be a finite number",
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

fn check_value(field: &str, v: &MetaValue) -> Result<(), InvalidArgument> {
    match v {
        MetaValue::Double(d) if !d.is_finite() => {
            Err(InvalidArgument::new(field, "must be a finite number"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(pairs: &[(&str, MetaValue)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn leaves_match_as_documented() {
        let m = meta(&[
            ("lang", MetaValue::String("en".into())),
            ("year", MetaValue::Int(2020)),
            ("score", MetaValue::Double(0.5)),
            ("tags", MetaValue::StringList(vec!["a".into(), "b".into()])),
        ]);
        let eq = |k: &str, v: MetaValue| Filter::Equals {
            key: k.into(),
            value: v,
        };
        assert!(eq("lang", MetaValue::String("en".into())).matches(&m));
        assert!(!eq("lang", MetaValue::String("fr".into())).matches(&m));
        assert!(
            eq("year", MetaValue::Double(2020.0)).matches(&m),
            "numbers compare as numbers"
        );
        assert!(
            eq("tags", MetaValue::String("b".into())).matches(&m),
            "any list element"
        );
        assert!(!eq("missing", MetaValue::Int(1)).matches(&m));
        let range = Filter::Range {
            key: "year".into(),
            gte: Some(2010.0),
            gt: None,
            lte: None,
            lt: Some(2021.0),
        };
        assert!(range.matches(&m));
        let range = Filter::Range {
            key: "year".into(),
            gte: None,
            gt: Some(2020.0),
            lte: None,
            lt: None,
        };
        assert!(!range.matches(&m), "gt is exclusive");
        let text_range = Filter::Range {
            key: "lang".into(),
            gte: Some(0.0),
            gt: None,
            lte: None,
            lt: None,
        };
        assert!(
            !text_range.matches(&m),
            "a string is not in a numeric range"
        );
        let within = Filter::In {
            key: "lang".into(),
            values: vec![
                MetaValue::String("fr".into()),
                MetaValue::String("en".into()),
            ],
        };
        assert!(within.matches(&m));
    }

    #[test]
    fn validation_names_the_clause() {
        let bad = Filter::And(vec![Filter::Or(vec![Filter::Range {
            key: "x".into(),
            gte: Some(f64::NAN),
            gt: None,
            lte: None,
            lt: None,
        }])]);
        assert_eq!(
            bad.validate("filter").unwrap_err().field,
            "filter.and[0].or[0].gte"
        );
        assert_eq!(
            Filter::Or(vec![]).validate("filter").unwrap_err().field,
            "filter.or"
        );
        let empty_key = Filter::Equals {
            key: String::new(),
            value: MetaValue::Int(1),
        };
        assert_eq!(
            empty_key.validate("filter").unwrap_err().field,
            "filter.key"
        );
        let mut deep = Filter::Equals {
            key: "k".into(),
            value: MetaValue::Int(1),
        };
        for _ in 0..MAX_FILTER_DEPTH {
            deep = Filter::And(vec![deep]);
        }
        assert!(deep
            .validate("filter")
            .unwrap_err()
            .reason
            .contains("deeper"));
        let wide = Filter::In {
            key: "k".into(),
            values: vec![MetaValue::Int(1); MAX_FILTER_CLAUSES + 1],
        };
        assert!(wide
            .validate("filter")
            .unwrap_err()
            .reason
            .contains("clauses"));
    }

    fn leaf() -> impl Strategy<Value = Filter> {
        prop_oneof![
            (0i64..5).prop_map(|v| Filter::Equals {
                key: "n".into(),
                value: MetaValue::Int(v)
            }),
            prop::collection::vec(0i64..5, 1..3).prop_map(|vs| Filter::In {
                key: "n".into(),
                values: vs.into_iter().map(MetaValue::Int).collect()
            }),
            (0i64..5, 0i64..5).prop_map(|(a, b)| Filter::Range {
                key: "n".into(),
                gte: Some(a as f64),
                gt: None,
                lte: Some(b as f64),
                lt: None
            }),
        ]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        leaf().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
                prop::collection::vec(inner, 1..3).prop_map(Filter::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn and_or_follow_boolean_logic(a in filter(), b in filter(), n in 0i64..5) {
            let m = meta(&[("n", MetaValue::Int(n))]);
            prop_assert_eq!(Filter::And(vec![a.clone(), b.clone()]).matches(&m), a.matches(&m) && b.matches(&m));
            prop_assert_eq!(Filter::Or(vec![a.clone(), b.clone()]).matches(&m), a.matches(&m) || b.matches(&m));
            prop_assert!(a.validate("filter").is_ok());
        }

        #[test]
        fn a_missing_key_matches_no_leaf(f in leaf()) {
            prop_assert!(!f.matches(&Metadata::new()));
        }
    }
}
