//! The backend as a whole: Quarry collections as Qdrant collections named
//! `<prefix>_c_<name>`, the records in `<prefix>_records`, and nothing on
//! the Quarry node's disk, so that any number of Quarry nodes serve one
//! cluster and a restarted node needs only its model cache.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::vectors_config::Config as VectorsKind;
use qdrant_client::qdrant::{
    quantization_config, QuantizationConfig, QuantizationType, ScalarQuantization,
};
use qdrant_client::qdrant::{
    CreateCollection, Distance, FieldType, HnswConfigDiff, Modifier, SparseVectorConfig,
    SparseVectorParams, Value, VectorParams, VectorParamsMap, VectorsConfig,
};
use quarry_core::{CollectionInfo, CollectionName, CollectionSettings, Placement, Quantization};
use quarry_engine::storage::{CollectionStorage, RecordStorage, Storage};
use quarry_engine::{DeletedCollection, EngineError, Result};
use quarry_store::{RecordKey, StoreError};

use crate::client::{Nodes, QdrantConfig, SharedNodes};
use crate::collection::{
    create_index, CollectionMeta, QdrantCollection, DENSE, DOC, INDEX, META_KEY, SPARSE, TERMS,
};
use crate::error::{tonic_code::Code, QdrantBackendError};
use crate::records::QdrantRecords;

/// Quarry on a Qdrant cluster.
pub struct QdrantStorage {
    nodes: SharedNodes,
    prefix: String,
    dimension: usize,
    records: QdrantRecords,
    /// Payload fields with an index, per Qdrant collection.
    indexed: Mutex<HashMap<String, Arc<Mutex<HashSet<String>>>>>,
    /// Collections described recently, so that a request does not pay a
    /// round trip to read settings that never change.
    described: Mutex<HashMap<String, Described>>,
}

/// What a collection's handle is made of, as read from Qdrant.
#[derive(Clone)]
struct Described {
    at: Instant,
    meta: CollectionMeta,
    placement: Placement,
    avg_len: Arc<Mutex<Option<crate::sparse::Averages>>>,
}

/// How long a collection's description is reused. A collection dropped
/// (or re-created with other settings) through another Quarry node is
/// seen here at most this much later; until then a call on it gets
/// Qdrant's NOT_FOUND (or the old settings).
const DESCRIBED_FOR: Duration = Duration::from_secs(1);

impl QdrantStorage {
    /// Connects to the cluster and opens (creating when needed) the
    /// records collection. `dimension` is the embedder's, for new
    /// collections. Fails with `Unavailable` naming Qdrant when no node
    /// answers.
    pub fn connect(
        config: &QdrantConfig,
        dimension: usize,
        record_key: Option<RecordKey>,
    ) -> Result<Self> {
        if config.prefix.is_empty()
            || !config
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(QdrantBackendError::Config(format!(
                "the collection prefix {:?} must be letters, digits, '_' or '-'",
                config.prefix
            ))
            .into());
        }
        let nodes = Arc::new(Nodes::connect(config)?);
        let records = QdrantRecords::open(
            Arc::clone(&nodes),
            format!("{}_records", config.prefix),
            record_key,
        )?;
        tracing::info!(nodes = ?nodes.urls(), prefix = %config.prefix, "Qdrant backend ready");
        Ok(Self {
            nodes,
            prefix: config.prefix.clone(),
            dimension,
            records,
            indexed: Mutex::new(HashMap::new()),
            described: Mutex::new(HashMap::new()),
        })
    }

    /// The records, with what a migration needs beyond
    /// [`RecordStorage`]: restoring a record under its id, counting.
    pub fn qdrant_records(&self) -> &QdrantRecords {
        &self.records
    }

    fn qname(&self, name: &CollectionName) -> String {
        format!("{}_c_{}", self.prefix, name.as_str())
    }

    fn not_found(name: &CollectionName) -> EngineError {
        EngineError::from(StoreError::CollectionNotFound(name.to_string()))
    }

    fn open(&self, name: &CollectionName) -> Result<QdrantCollection> {
        let qname = self.qname(name);
        let fresh = self
            .described
            .lock()
            .expect("not poisoned")
            .get(&qname)
            .filter(|d| d.at.elapsed() < DESCRIBED_FOR)
            .cloned();
        if let Some(d) = fresh {
            let indexed = self.indexed_fields(&qname, std::iter::empty());
            return Ok(QdrantCollection::new(
                Arc::clone(&self.nodes),
                name.clone(),
                qname,
                d.meta,
                d.placement,
                indexed,
                d.avg_len,
            ));
        }
        let info = match self.nodes.run("a read of a collection", |c| {
            let n = qname.clone();
            async move { c.collection_info(n).await }
        }) {
            Ok(info) => info,
            Err(QdrantBackendError::Refused {
                code: Code::NotFound,
                ..
            }) => return Err(Self::not_found(name)),
            Err(e) => return Err(e.into()),
        };
        let info = info.result.unwrap_or_default();
        let config = info.config.unwrap_or_default();
        let meta: CollectionMeta = config
            .metadata
            .get(META_KEY)
            .and_then(|v| v.clone().into_json().as_str().map(str::to_owned))
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| QdrantBackendError::Corrupt {
                what: "collection",
                detail: format!("{qname} has no Quarry settings in its metadata"),
            })?;
        let params = config.params.unwrap_or_default();
        let placement = Placement {
            shard_number: Some(params.shard_number),
            replication_factor: Some(params.replication_factor.unwrap_or(1)),
            write_consistency_factor: Some(params.write_consistency_factor.unwrap_or(1)),
        };
        let indexed = self.indexed_fields(&qname, info.payload_schema.into_keys());
        let avg_len = Arc::new(Mutex::new(meta.avg_len));
        self.described.lock().expect("not poisoned").insert(
            qname.clone(),
            Described {
                at: Instant::now(),
                meta: meta.clone(),
                placement,
                avg_len: Arc::clone(&avg_len),
            },
        );
        Ok(QdrantCollection::new(
            Arc::clone(&self.nodes),
            name.clone(),
            qname,
            meta,
            placement,
            indexed,
            avg_len,
        ))
    }

    /// The shared set of indexed payload fields of `qname`, with `known`
    /// added.
    fn indexed_fields(
        &self,
        qname: &str,
        known: impl Iterator<Item = String>,
    ) -> Arc<Mutex<HashSet<String>>> {
        let mut all = self.indexed.lock().expect("not poisoned");
        let set = all.entry(qname.to_owned()).or_default();
        set.lock().expect("not poisoned").extend(known);
        Arc::clone(set)
    }

    fn forget(&self, qname: &str) {
        self.described.lock().expect("not poisoned").remove(qname);
        self.indexed.lock().expect("not poisoned").remove(qname);
    }
}

impl Storage for QdrantStorage {
    fn create_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        placement: Placement,
    ) -> Result<CollectionInfo> {
        let qname = self.qname(name);
        let meta = CollectionMeta {
            settings,
            created_at_ms: quarry_core::now_ms(),
            avg_len: None,
        };
        let request = CreateCollection {
            collection_name: qname.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(VectorsKind::ParamsMap(VectorParamsMap {
                    map: HashMap::from([(
                        DENSE.to_owned(),
                        VectorParams {
                            size: self.dimension as u64,
                            distance: Distance::Cosine as i32,
                            hnsw_config: Some(HnswConfigDiff {
                                m: Some(settings.hnsw_m as u64),
                                ef_construct: Some(settings.hnsw_ef_construction as u64),
                                ..Default::default()
                            }),
                            quantization_config: quantization_config(settings.quantization),
                            ..Default::default()
                        },
                    )]),
                })),
            }),
            sparse_vectors_config: Some(SparseVectorConfig {
                map: HashMap::from([(
                    SPARSE.to_owned(),
                    SparseVectorParams {
                        index: None,
                        modifier: Some(Modifier::Idf as i32),
                    },
                )]),
            }),
            shard_number: placement.shard_number,
            replication_factor: placement.replication_factor,
            write_consistency_factor: placement.write_consistency_factor,
            metadata: HashMap::from([(
                META_KEY.to_owned(),
                Value::from(serde_json::to_string(&meta).expect("settings serialise")),
            )]),
            ..Default::default()
        };
        self.forget(&qname);
        // Qdrant refuses a name that is taken ("... already exists!").
        match self.nodes.run("creating a collection", |c| {
            let r = request.clone();
            async move { c.create_collection(r).await }
        }) {
            Ok(_) => {}
            Err(QdrantBackendError::Refused { message, .. })
                if message.contains("already exists") =>
            {
                return Err(EngineError::from(StoreError::CollectionExists(
                    name.to_string(),
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let indexes = [
            (DOC, FieldType::Keyword),
            (INDEX, FieldType::Integer),
            (TERMS, FieldType::Keyword),
        ];
        for (field, kind) in indexes {
            if let Err(e) = create_index(&self.nodes, &qname, field, kind) {
                // Without its indexes the collection is slow and its counts
                // wrong: undo it.
                let n = qname.clone();
                let _ = self.nodes.run("undoing a collection", |c| {
                    let n = n.clone();
                    async move { c.delete_collection(n).await }
                });
                return Err(e);
            }
        }
        tracing::info!(collection = %name, qdrant = %qname, ?placement, "Qdrant collection created");
        self.open(name)?.info()
    }

    fn collection(&self, name: &CollectionName) -> Result<Arc<dyn CollectionStorage>> {
        Ok(Arc::new(self.open(name)?))
    }

    fn collection_names(&self) -> Result<Vec<CollectionName>> {
        let listed = self.nodes.run("a list of collections", |c| async move {
            c.list_collections().await
        })?;
        let prefix = format!("{}_c_", self.prefix);
        let mut names: Vec<CollectionName> = listed
            .collections
            .into_iter()
            .filter_map(|c| {
                let n = c.name.strip_prefix(&prefix)?;
                CollectionName::parse(n).ok()
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn drop_collection(&self, name: &CollectionName) -> Result<DeletedCollection> {
        let info = self.open(name)?.info()?;
        let qname = self.qname(name);
        let deleted = self.nodes.run("deleting a collection", |c| {
            let n = qname.clone();
            async move { c.delete_collection(n).await }
        })?;
        self.forget(&qname);
        if !deleted.result {
            return Err(Self::not_found(name));
        }
        Ok(DeletedCollection {
            name: name.clone(),
            documents: info.document_count,
            chunks: info.chunk_count,
        })
    }

    fn records(&self) -> &dyn RecordStorage {
        &self.records
    }

    /// Qdrant guards its own disks.
    fn check_room(&self) -> Result<()> {
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    fn writes_failed(&self) -> bool {
        false
    }

    /// Every write was applied (`wait=true`) before it was acknowledged;
    /// there is nothing to flush.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn health(&self) -> Result<()> {
        self.nodes
            .run("a health check", |c| async move { c.health_check().await })?;
        Ok(())
    }
}

/// Qdrant's own scalar quantisation for `int8` (its search rescores with
/// the original vectors, asked for in each query), nothing for `none`.
fn quantization_config(q: Quantization) -> Option<QuantizationConfig> {
    match q {
        Quantization::None => None,
        Quantization::Int8 => Some(QuantizationConfig {
            quantization: Some(quantization_config::Quantization::Scalar(
                ScalarQuantization {
                    r#type: QuantizationType::Int8 as i32,
                    ..Default::default()
                },
            )),
        }),
    }
}
