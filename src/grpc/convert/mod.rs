//! Conversions between `quarry.v1` messages and engine types.
//!
//! Requests convert with `TryFrom`, which validates and destructures the
//! message completely, so adding a field to the .proto is a compile error
//! here until it is handled. Replies convert with `From`.

use quarry_core::{
    CollectionInfo, CollectionName, CollectionSettings, InvalidArgument, SettingsPatch,
};
use quarry_engine::{CreateCollection, DeletedCollection, Embeddings};

use crate::proto;

mod documents;
mod history;
mod rag;

pub use documents::{
    bulk_batch_from_proto, filter_from_proto, filter_to_proto, DeleteDocuments, GetDocument,
    UpsertDocuments,
};
pub use history::{delete_from_proto, list_from_proto, record_filter_from_proto, record_id};
pub use rag::ask_from_proto;

impl TryFrom<proto::CreateCollectionRequest> for CreateCollection {
    type Error = InvalidArgument;

    fn try_from(req: proto::CreateCollectionRequest) -> Result<Self, Self::Error> {
        let proto::CreateCollectionRequest {
            name,
            settings,
            placement,
        } = req;
        let name = CollectionName::parse(&name)?;
        let proto::CollectionSettings {
            chunk_size,
            chunk_overlap,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            language,
            quantization,
        } = settings.unwrap_or_default();
        let language = language
            .map(|l| quarry_core::Language::parse_field(&l, "settings.language"))
            .transpose()?;
        let quantization = quantization
            .map(|q| quarry_core::Quantization::parse_field(&q, "settings.quantization"))
            .transpose()?;
        let settings = SettingsPatch {
            chunk_size,
            chunk_overlap,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            language,
            quantization,
        }
        .resolve()?;
        let proto::Placement {
            shard_number,
            replication_factor,
            write_consistency_factor,
        } = placement.unwrap_or_default();
        let placement = quarry_core::Placement {
            shard_number,
            replication_factor,
            write_consistency_factor,
        };
        placement.validate()?;
        Ok(CreateCollection {
            name,
            settings,
            placement,
        })
    }
}

impl TryFrom<proto::GetCollectionRequest> for CollectionName {
    type Error = InvalidArgument;

    fn try_from(req: proto::GetCollectionRequest) -> Result<Self, Self::Error> {
        let proto::GetCollectionRequest { name } = req;
        CollectionName::parse(&name)
    }
}

impl TryFrom<proto::DeleteCollectionRequest> for CollectionName {
    type Error = InvalidArgument;

    fn try_from(req: proto::DeleteCollectionRequest) -> Result<Self, Self::Error> {
        let proto::DeleteCollectionRequest { name } = req;
        CollectionName::parse(&name)
    }
}

impl From<CollectionSettings> for proto::CollectionSettings {
    fn from(s: CollectionSettings) -> Self {
        let CollectionSettings {
            chunk_size,
            chunk_overlap,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            language,
            quantization,
        } = s;
        Self {
            chunk_size: Some(chunk_size),
            chunk_overlap: Some(chunk_overlap),
            hnsw_m: Some(hnsw_m),
            hnsw_ef_construction: Some(hnsw_ef_construction),
            hnsw_ef_search: Some(hnsw_ef_search),
            language: Some(language.code().to_owned()),
            quantization: Some(quantization.code().to_owned()),
        }
    }
}

impl From<CollectionInfo> for proto::Collection {
    fn from(c: CollectionInfo) -> Self {
        let CollectionInfo {
            name,
            settings,
            created_at_ms,
            document_count,
            chunk_count,
            indexed,
            placement,
            note,
        } = c;
        Self {
            name: name.into(),
            settings: Some(settings.into()),
            document_count,
            chunk_count,
            created_at_ms,
            dense_indexed_chunks: indexed.dense,
            keyword_indexed_chunks: indexed.keyword,
            placement: placement.map(|p| proto::Placement {
                shard_number: p.shard_number,
                replication_factor: p.replication_factor,
                write_consistency_factor: p.write_consistency_factor,
            }),
            note,
        }
    }
}

impl From<DeletedCollection> for proto::DeleteCollectionResponse {
    fn from(d: DeletedCollection) -> Self {
        let DeletedCollection {
            name,
            documents,
            chunks,
        } = d;
        Self {
            name: name.into(),
            documents_deleted: documents,
            chunks_deleted: chunks,
        }
    }
}

impl From<Embeddings> for proto::EmbedResponse {
    fn from(e: Embeddings) -> Self {
        let Embeddings {
            vectors,
            model,
            dimension,
            tokens,
        } = e;
        Self {
            embeddings: vectors
                .into_iter()
                .map(|values| proto::Embedding { values })
                .collect(),
            model,
            dimension: dimension as u32,
            token_count: tokens,
        }
    }
}

impl crate::grpc::edge::Scoped for CollectionName {
    fn collection(&self) -> Option<&CollectionName> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_fills_defaults_and_names_bad_fields() {
        let ok = CreateCollection::try_from(proto::CreateCollectionRequest {
            name: "docs".into(),
            settings: None,
            placement: None,
        })
        .unwrap();
        assert_eq!(ok.settings, CollectionSettings::default());

        let err = CreateCollection::try_from(proto::CreateCollectionRequest {
            name: "docs".into(),
            settings: Some(proto::CollectionSettings {
                hnsw_m: Some(1),
                ..Default::default()
            }),
            placement: None,
        })
        .unwrap_err();
        assert_eq!(err.field, "settings.hnsw_m");

        for (placement, field) in [
            ((Some(0), None, None), "placement.shard_number"),
            ((None, Some(17), None), "placement.replication_factor"),
            (
                (None, Some(2), Some(3)),
                "placement.write_consistency_factor",
            ),
            ((None, None, Some(2)), "placement.write_consistency_factor"),
        ] {
            let err = CreateCollection::try_from(proto::CreateCollectionRequest {
                name: "docs".into(),
                settings: None,
                placement: Some(proto::Placement {
                    shard_number: placement.0,
                    replication_factor: placement.1,
                    write_consistency_factor: placement.2,
                }),
            })
            .unwrap_err();
            assert_eq!(err.field, field, "{placement:?}");
        }
        let ok = CreateCollection::try_from(proto::CreateCollectionRequest {
            name: "docs".into(),
            settings: None,
            placement: Some(proto::Placement {
                shard_number: Some(6),
                replication_factor: Some(2),
                write_consistency_factor: Some(1),
            }),
        })
        .unwrap();
        assert_eq!(ok.placement.replication_factor, Some(2));

        let err = CreateCollection::try_from(proto::CreateCollectionRequest {
            name: "no spaces".into(),
            settings: None,
            placement: None,
        })
        .unwrap_err();
        assert_eq!(err.field, "name");
    }
}
