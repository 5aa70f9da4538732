//! Small conversions between Quarry's values and Qdrant's request and
//! response types: point ids, payload maps and JSON, field conditions and
//! selectors. (Every write also carries `wait=true` and an ordering: see
//! [`crate::client::Nodes::write`].)

use std::collections::HashMap;

use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::vector_output::Vector as VectorKind;
use qdrant_client::qdrant::vectors_output::VectorsOptions;
use qdrant_client::qdrant::{
    with_payload_selector, with_vectors_selector, Condition, FieldCondition, Filter, Match,
    PayloadIncludeSelector, PointId, Range, RepeatedStrings, Value, VectorsOutput, VectorsSelector,
    WithPayloadSelector, WithVectorsSelector,
};
use qdrant_client::Payload;

use crate::error::QdrantBackendError;

/// A numeric point id.
pub fn point(id: u64) -> PointId {
    PointId {
        point_id_options: Some(PointIdOptions::Num(id)),
    }
}

/// The number of a numeric point id.
pub fn point_num(id: &Option<PointId>) -> Option<u64> {
    match id.as_ref()?.point_id_options.as_ref()? {
        PointIdOptions::Num(n) => Some(*n),
        PointIdOptions::Uuid(_) => None,
    }
}

/// A JSON object as a payload.
pub fn payload(json: serde_json::Value) -> Result<Payload, QdrantBackendError> {
    Payload::try_from(json).map_err(|e| QdrantBackendError::Corrupt {
        what: "payload",
        detail: e.to_string(),
    })
}

/// A payload map back as a JSON object, read into `T`.
pub fn from_payload<T: serde::de::DeserializeOwned>(
    what: &'static str,
    map: HashMap<String, Value>,
) -> Result<T, QdrantBackendError> {
    let object: serde_json::Map<String, serde_json::Value> =
        map.into_iter().map(|(k, v)| (k, v.into_json())).collect();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        QdrantBackendError::Corrupt {
            what,
            detail: e.to_string(),
        }
    })
}

/// Only these payload fields.
pub fn fields(names: &[&str]) -> WithPayloadSelector {
    WithPayloadSelector {
        selector_options: Some(with_payload_selector::SelectorOptions::Include(
            PayloadIncludeSelector {
                fields: names.iter().map(|s| s.to_string()).collect(),
            },
        )),
    }
}

/// No payload.
pub fn no_payload() -> WithPayloadSelector {
    WithPayloadSelector {
        selector_options: Some(with_payload_selector::SelectorOptions::Enable(false)),
    }
}

/// Only the named vector (`None`: no vectors).
pub fn vectors(name: Option<&str>) -> WithVectorsSelector {
    WithVectorsSelector {
        selector_options: Some(match name {
            Some(n) => with_vectors_selector::SelectorOptions::Include(VectorsSelector {
                names: vec![n.to_owned()],
            }),
            None => with_vectors_selector::SelectorOptions::Enable(false),
        }),
    }
}

/// The dense vector `name` of a retrieved point.
pub fn dense_of(vectors: Option<VectorsOutput>, name: &str) -> Option<Vec<f32>> {
    let out = match vectors?.vectors_options? {
        VectorsOptions::Vector(v) => v,
        VectorsOptions::Vectors(mut named) => named.vectors.remove(name)?,
    };
    #[allow(deprecated)]
    match out.vector {
        Some(VectorKind::Dense(d)) => Some(d.data),
        Some(_) => None,
        None => Some(out.data),
    }
}

/// `key` matches `value`.
pub fn matching(key: &str, value: MatchValue) -> Condition {
    field(FieldCondition {
        key: key.to_owned(),
        r#match: Some(Match {
            match_value: Some(value),
        }),
        ..Default::default()
    })
}

/// `key` equals the keyword `value`.
pub fn keyword(key: &str, value: &str) -> Condition {
    matching(key, MatchValue::Keyword(value.to_owned()))
}

/// `key` is one of the keywords `values`.
pub fn any_keyword(key: &str, values: &[String]) -> Condition {
    matching(
        key,
        MatchValue::Keywords(RepeatedStrings {
            strings: values.to_vec(),
        }),
    )
}

/// `key` equals the integer `value`.
pub fn integer(key: &str, value: i64) -> Condition {
    matching(key, MatchValue::Integer(value))
}

/// Bytes as lower-case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key` lies in `range`.
pub fn range(key: &str, range: Range) -> Condition {
    field(FieldCondition {
        key: key.to_owned(),
        range: Some(range),
        ..Default::default()
    })
}

fn field(f: FieldCondition) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Field(f)),
    }
}

/// A filter as a condition (to nest it).
pub fn nested(filter: Filter) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Filter(filter)),
    }
}

/// Every condition must hold.
pub fn all(conditions: Vec<Condition>) -> Filter {
    Filter {
        must: conditions,
        ..Default::default()
    }
}

/// These points.
pub fn ids_selector(ids: &[u64]) -> qdrant_client::qdrant::PointsSelector {
    use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
    qdrant_client::qdrant::PointsSelector {
        points_selector_one_of: Some(PointsSelectorOneOf::Points(
            qdrant_client::qdrant::PointsIdsList {
                ids: ids.iter().map(|&i| point(i)).collect(),
            },
        )),
    }
}
