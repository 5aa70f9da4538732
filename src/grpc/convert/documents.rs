//! Conversions of documents, metadata values and filters. Every error
//! names the field by its path in the request (e.g.
//! `documents[3].metadata["year"]`, `filter.and[0].range`).

use quarry_core::{CollectionName, Document, Filter, InvalidArgument, MetaValue};
use quarry_engine::{
    BulkBatch, DeleteSelector, DeleteSummary, Fusion, Mode, SearchHit, SearchRequest,
    StoredDocument, UpsertSummary, DEFAULT_CONVEX_ALPHA, DEFAULT_RRF_K,
};

use crate::proto;

/// A validated `Documents.Upsert` request.
pub struct UpsertDocuments {
    pub collection: CollectionName,
    pub documents: Vec<Document>,
}

/// A validated `Documents.GetDocument` request.
pub struct GetDocument {
    pub collection: CollectionName,
    pub id: String,
}

/// A validated `Documents.DeleteDocuments` request.
pub struct DeleteDocuments {
    pub collection: CollectionName,
    pub selector: DeleteSelector,
}

fn meta_value_from_proto(
    v: proto::MetadataValue,
    field: &str,
) -> Result<MetaValue, InvalidArgument> {
    use proto::metadata_value::Kind;
    let proto::MetadataValue { kind } = v;
    Ok(match kind {
        Some(Kind::StringValue(s)) => MetaValue::String(s),
        Some(Kind::IntValue(i)) => MetaValue::Int(i),
        Some(Kind::DoubleValue(d)) if d.is_finite() => MetaValue::Double(d),
        Some(Kind::DoubleValue(_)) => {
            return Err(InvalidArgument::new(field, "must be a finite number"))
        }
        Some(Kind::BoolValue(b)) => MetaValue::Bool(b),
        Some(Kind::StringList(proto::StringList { values })) => MetaValue::StringList(values),
        None => return Err(InvalidArgument::new(field, "has no value set")),
    })
}

fn meta_value_to_proto(v: MetaValue) -> proto::MetadataValue {
    use proto::metadata_value::Kind;
    proto::MetadataValue {
        kind: Some(match v {
            MetaValue::String(s) => Kind::StringValue(s),
            MetaValue::Int(i) => Kind::IntValue(i),
            MetaValue::Double(d) => Kind::DoubleValue(d),
            MetaValue::Bool(b) => Kind::BoolValue(b),
            MetaValue::StringList(values) => Kind::StringList(proto::StringList { values }),
        }),
    }
}

fn document_from_proto(d: proto::Document, field: &str) -> Result<Document, InvalidArgument> {
    // chunk_count and content_hash are read-only: ignored on input.
    let proto::Document {
        id,
        title,
        text,
        metadata,
        chunk_count: _,
        content_hash: _,
    } = d;
    let metadata = metadata
        .into_iter()
        .map(|(k, v)| {
            let value = meta_value_from_proto(v, &format!("{field}.metadata[{k:?}]"))?;
            Ok((k, value))
        })
        .collect::<Result<_, InvalidArgument>>()?;
    Ok(Document {
        id,
        title,
        text,
        metadata,
    })
}

/// Converts a filter, naming each clause by its path in the request.
pub fn filter_from_proto(f: proto::Filter, field: &str) -> Result<Filter, InvalidArgument> {
    use proto::filter::Clause;
    let proto::Filter { clause } = f;
    let list = |l: proto::FilterList, name: &str| -> Result<Vec<Filter>, InvalidArgument> {
        let proto::FilterList { filters } = l;
        filters
            .into_iter()
            .enumerate()
            .map(|(i, f)| filter_from_proto(f, &format!("{field}.{name}[{i}]")))
            .collect()
    };
    Ok(match clause {
        Some(Clause::And(l)) => Filter::And(list(l, "and")?),
        Some(Clause::Or(l)) => Filter::Or(list(l, "or")?),
        Some(Clause::Equals(proto::FieldEquals { key, value })) => Filter::Equals {
            key,
            value: meta_value_from_proto(
                value.ok_or_else(|| {
                    InvalidArgument::new(format!("{field}.equals.value"), "is required")
                })?,
                &format!("{field}.equals.value"),
            )?,
        },
        Some(Clause::In(proto::FieldIn { key, values })) => Filter::In {
            key,
            values: values
                .into_iter()
                .enumerate()
                .map(|(i, v)| meta_value_from_proto(v, &format!("{field}.in.values[{i}]")))
                .collect::<Result<_, _>>()?,
        },
        Some(Clause::Range(proto::FieldRange {
            key,
            gte,
            gt,
            lte,
            lt,
        })) => Filter::Range {
            key,
            gte,
            gt,
            lte,
            lt,
        },
        None => return Err(InvalidArgument::new(field, "has no clause set")),
    })
}

/// One BulkIngest message: its collection field and its documents, each
/// converted on its own so that a bad one fails alone.
pub fn bulk_batch_from_proto(req: proto::BulkIngestRequest) -> (String, BulkBatch) {
    let proto::BulkIngestRequest {
        collection,
        documents,
    } = req;
    let mut batch = BulkBatch::default();
    for d in documents {
        let id = d.id.clone();
        match document_from_proto(d, "document") {
            Ok(doc) => batch.documents.push(doc),
            Err(e) => batch.failed.push((id, e.to_string())),
        }
    }
    (collection, batch)
}

impl TryFrom<proto::UpsertRequest> for UpsertDocuments {
    type Error = InvalidArgument;

    fn try_from(req: proto::UpsertRequest) -> Result<Self, Self::Error> {
        let proto::UpsertRequest {
            collection,
            documents,
        } = req;
        Ok(Self {
            collection: CollectionName::parse_field(&collection, "collection")?,
            documents: documents
                .into_iter()
                .enumerate()
                .map(|(i, d)| document_from_proto(d, &format!("documents[{i}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<proto::GetDocumentRequest> for GetDocument {
    type Error = InvalidArgument;

    fn try_from(req: proto::GetDocumentRequest) -> Result<Self, Self::Error> {
        let proto::GetDocumentRequest { collection, id } = req;
        if id.is_empty() {
            return Err(InvalidArgument::new("id", "must not be empty"));
        }
        Ok(Self {
            collection: CollectionName::parse_field(&collection, "collection")?,
            id,
        })
    }
}

impl TryFrom<proto::DeleteDocumentsRequest> for DeleteDocuments {
    type Error = InvalidArgument;

    fn try_from(req: proto::DeleteDocumentsRequest) -> Result<Self, Self::Error> {
        let proto::DeleteDocumentsRequest {
            collection,
            ids,
            filter,
        } = req;
        let collection = CollectionName::parse_field(&collection, "collection")?;
        let selector = match (ids.is_empty(), filter) {
            (false, None) => DeleteSelector::Ids(ids),
            (true, Some(f)) => DeleteSelector::Filter(filter_from_proto(f, "filter")?),
            (false, Some(_)) => {
                return Err(InvalidArgument::new(
                    "ids",
                    "set either ids or filter, not both",
                ))
            }
            (true, None) => return Err(InvalidArgument::new("ids", "set ids or filter")),
        };
        Ok(Self {
            collection,
            selector,
        })
    }
}

impl From<StoredDocument> for proto::Document {
    fn from(d: StoredDocument) -> Self {
        let StoredDocument {
            document,
            content_hash,
            chunk_ids,
            updated_seq: _,
        } = d;
        let Document {
            id,
            title,
            text,
            metadata,
        } = document;
        Self {
            id,
            title,
            text,
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (k, meta_value_to_proto(v)))
                .collect(),
            chunk_count: chunk_ids.len() as u32,
            content_hash,
        }
    }
}

impl From<UpsertSummary> for proto::UpsertResponse {
    fn from(s: UpsertSummary) -> Self {
        let UpsertSummary {
            added,
            updated,
            unchanged,
            chunks_written,
            chunks_embedded: _,
        } = s;
        Self {
            added,
            updated,
            unchanged,
            chunks_written,
        }
    }
}

impl From<DeleteSummary> for proto::DeleteDocumentsResponse {
    fn from(s: DeleteSummary) -> Self {
        let DeleteSummary { documents, chunks } = s;
        Self {
            documents_deleted: documents,
            chunks_deleted: chunks,
        }
    }
}

impl TryFrom<proto::SearchRequest> for SearchRequest {
    type Error = InvalidArgument;

    fn try_from(req: proto::SearchRequest) -> Result<Self, Self::Error> {
        let proto::SearchRequest {
            collection,
            query,
            top_k,
            mode,
            filter,
            fusion,
            rrf_k,
            alpha,
            sentence_weight,
        } = req;
        let mode = match proto::SearchMode::try_from(mode) {
            Ok(proto::SearchMode::Unspecified | proto::SearchMode::Hybrid) => Mode::Hybrid,
            Ok(proto::SearchMode::Dense) => Mode::Dense,
            Ok(proto::SearchMode::Keyword) => Mode::Keyword,
            Err(_) => {
                return Err(InvalidArgument::new(
                    "mode",
                    format!("{mode} is not a SearchMode"),
                ))
            }
        };
        let fusion = match proto::FusionMethod::try_from(fusion) {
            Ok(proto::FusionMethod::Rrf) => Fusion::Rrf {
                k: rrf_k.map_or(DEFAULT_RRF_K, |k| k as f32),
                dense_weight: 1.0,
                keyword_weight: 1.0,
            },
            Ok(proto::FusionMethod::Convex) => Fusion::Convex {
                alpha: alpha.unwrap_or(DEFAULT_CONVEX_ALPHA),
            },
            // Unspecified means the default, adaptive (see Fusion::default);
            // the engine sets the query's coverage.
            Ok(proto::FusionMethod::Unspecified | proto::FusionMethod::Adaptive) => {
                Fusion::Adaptive {
                    alpha: alpha.unwrap_or(DEFAULT_CONVEX_ALPHA),
                    coverage: 1.0,
                }
            }
            Ok(proto::FusionMethod::Dbsf) => Fusion::Dbsf {
                alpha: alpha.unwrap_or(DEFAULT_CONVEX_ALPHA),
            },
            Ok(proto::FusionMethod::Zscore) => Fusion::Zscore {
                alpha: alpha.unwrap_or(DEFAULT_CONVEX_ALPHA),
            },
            Err(_) => {
                return Err(InvalidArgument::new(
                    "fusion",
                    format!("{fusion} is not a FusionMethod"),
                ))
            }
        };
        Ok(Self {
            collection: CollectionName::parse_field(&collection, "collection")?,
            query,
            top_k: top_k as usize,
            mode,
            filter: filter.map(|f| filter_from_proto(f, "filter")).transpose()?,
            fusion,
            sentence_weight: sentence_weight.unwrap_or(0.0),
        })
    }
}

impl From<SearchHit> for proto::Hit {
    fn from(h: SearchHit) -> Self {
        let SearchHit {
            chunk_id,
            document_id,
            title,
            text,
            score,
            metadata,
            dense,
            keyword,
            chunk_index,
        } = h;
        Self {
            chunk_id,
            document_id,
            title,
            text,
            score,
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (k, meta_value_to_proto(v)))
                .collect(),
            dense_score: dense.map(|(_, s)| s as f64),
            dense_rank: dense.map(|(r, _)| r),
            keyword_score: keyword.map(|(_, s)| s as f64),
            keyword_rank: keyword.map(|(r, _)| r),
            chunk_index,
        }
    }
}

/// The API message for a filter (the reverse of [`filter_from_proto`]).
pub fn filter_to_proto(f: Filter) -> proto::Filter {
    use proto::filter::Clause;
    let list = |fs: Vec<Filter>| proto::FilterList {
        filters: fs.into_iter().map(filter_to_proto).collect(),
    };
    proto::Filter {
        clause: Some(match f {
            Filter::And(fs) => Clause::And(list(fs)),
            Filter::Or(fs) => Clause::Or(list(fs)),
            Filter::Equals { key, value } => Clause::Equals(proto::FieldEquals {
                key,
                value: Some(meta_value_to_proto(value)),
            }),
            Filter::In { key, values } => Clause::In(proto::FieldIn {
                key,
                values: values.into_iter().map(meta_value_to_proto).collect(),
            }),
            Filter::Range {
                key,
                gte,
                gt,
                lte,
                lt,
            } => Clause::Range(proto::FieldRange {
                key,
                gte,
                gt,
                lte,
                lt,
            }),
        }),
    }
}

impl crate::grpc::edge::Scoped for UpsertDocuments {
    fn collection(&self) -> Option<&CollectionName> {
        Some(&self.collection)
    }
}

impl crate::grpc::edge::Scoped for GetDocument {
    fn collection(&self) -> Option<&CollectionName> {
        Some(&self.collection)
    }
}

impl crate::grpc::edge::Scoped for DeleteDocuments {
    fn collection(&self) -> Option<&CollectionName> {
        Some(&self.collection)
    }
}

impl crate::grpc::edge::Scoped for SearchRequest {
    fn collection(&self) -> Option<&CollectionName> {
        Some(&self.collection)
    }
}
