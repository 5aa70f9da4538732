//! Search: validate, embed the query on the model thread, then run the
//! collection's retrievers through its storage handle on the blocking
//! pool (which hydrates the hits: chunk text, document title, metadata).

use quarry_core::{CollectionName, Filter, InvalidArgument, Metadata};
use quarry_index::{Fusion, Mode, SearchQuery};

use crate::storage::CollectionStorage;
use crate::{rescore, Engine, EngineError, Inner, Result};

/// Limits and defaults of Search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Hits when the request says 0.
    pub default_top_k: usize,
    /// Most hits one request may ask for.
    pub max_top_k: usize,
    /// Longest query, in bytes.
    pub max_query_bytes: usize,
    /// Candidates each retriever contributes to fusion (at least top_k).
    pub depth: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            default_top_k: 10,
            max_top_k: 100,
            max_query_bytes: 8192,
            depth: 100,
        }
    }
}

/// A search request (fields as in the API).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The collection.
    pub collection: CollectionName,
    /// The query text.
    pub query: String,
    /// Hits wanted; 0 means the default.
    pub top_k: usize,
    /// Retrievers.
    pub mode: Mode,
    /// Metadata filter.
    pub filter: Option<Filter>,
    /// Fusion for Hybrid.
    pub fusion: Fusion,
    /// Weight of the best sentence in a rescoring of the top hits, 0..=1;
    /// 0 (the default) leaves the ranking alone (see [`crate::rescore`]).
    pub sentence_weight: f32,
}

/// One hit, hydrated from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Chunk id.
    pub chunk_id: u64,
    /// Its document.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// The chunk's text.
    pub text: String,
    /// Fused (or single-retriever) score.
    pub score: f64,
    /// The document's metadata.
    pub metadata: Metadata,
    /// Dense rank and score.
    pub dense: Option<(u32, f32)>,
    /// Keyword rank and score.
    pub keyword: Option<(u32, f32)>,
    /// The chunk's position in its document.
    pub chunk_index: u32,
}

fn validate(req: &SearchRequest, limits: &SearchLimits) -> Result<(), InvalidArgument> {
    InvalidArgument::check_text("query", &req.query, limits.max_query_bytes)?;
    if req.top_k > limits.max_top_k {
        return Err(InvalidArgument::new(
            "top_k",
            format!("is {}; the limit is {}", req.top_k, limits.max_top_k),
        ));
    }
    match req.fusion {
        Fusion::Rrf { k, .. } if !(k.is_finite() && k > 0.0 && k <= 10_000.0) => {
            return Err(InvalidArgument::new(
                "rrf_k",
                format!("is {k}; allowed range is 1..=10000"),
            ));
        }
        Fusion::Convex { alpha }
        | Fusion::Dbsf { alpha }
        | Fusion::Zscore { alpha }
        | Fusion::Adaptive { alpha, .. }
            if !(0.0..=1.0).contains(&alpha) =>
        {
            return Err(InvalidArgument::new(
                "alpha",
                format!("is {alpha}; allowed range is 0..=1"),
            ));
        }
        _ => {}
    }
    if !(0.0..=1.0).contains(&req.sentence_weight) {
        return Err(InvalidArgument::new(
            "sentence_weight",
            format!("is {}; allowed range is 0..=1", req.sentence_weight),
        ));
    }
    if let Some(f) = &req.filter {
        f.validate("filter")?;
    }
    Ok(())
}

impl Engine {
    /// Searches a collection.
    pub async fn search(&self, req: SearchRequest) -> Result<Vec<SearchHit>> {
        // Validated once, before the embedder is asked for anything.
        let mut req = prepare(req, &self.inner.search_limits)?;
        let weight = req.sentence_weight;
        let top_k = req.top_k;
        let vector = if req.mode == Mode::Keyword && weight == 0.0 {
            None
        } else {
            Some(self.embed_one(&req.query).await?)
        };
        // The dense retriever's vector, and the rescoring's.
        let (dense, query) = match (req.mode, weight > 0.0) {
            (Mode::Keyword, _) => (None, vector),
            (_, true) => (vector.clone(), vector),
            (_, false) => (vector, None),
        };
        if query.is_some() {
            req.top_k = top_k.max(rescore::RESCORE_DEPTH);
        }
        let mut hits = self
            .blocking(move |inner| {
                let coll = inner.storage.collection(&req.collection)?;
                search_in(inner, &*coll, req, dense.as_deref())
            })
            .await?;
        if let Some(query) = query {
            self.rescore(&query, &mut hits, weight).await?;
            hits.truncate(top_k);
        }
        Ok(hits)
    }

    /// Reorders the best hits by their best sentence (see [`rescore`]).
    async fn rescore(&self, query: &[f32], hits: &mut [SearchHit], weight: f32) -> Result<()> {
        let n = hits.len().min(rescore::RESCORE_DEPTH);
        let per_hit: Vec<Vec<String>> = hits[..n]
            .iter()
            .map(|h| rescore::candidate_sentences(&h.text))
            .collect();
        let texts: Vec<String> = per_hit.iter().flatten().cloned().collect();
        if texts.is_empty() {
            return Ok(());
        }
        let vectors = self.inner.embedder.embed(texts).await?;
        let mut vectors = vectors.iter();
        let best: Vec<f32> = per_hit
            .iter()
            .map(|sentences| {
                vectors
                    .by_ref()
                    .take(sentences.len())
                    .map(|v| crate::grounding::dot(query, v))
                    .fold(-1.0, f32::max)
            })
            .collect();
        let scores: Vec<f64> = hits[..n].iter().map(|h| h.score).collect();
        let order = rescore::reorder(&scores, &best, weight);
        let old: Vec<SearchHit> = hits[..n].to_vec();
        for (slot, (from, score)) in hits[..n].iter_mut().zip(order) {
            *slot = old[from].clone();
            slot.score = score;
        }
        Ok(())
    }

    /// The embedding of one text, from the model thread.
    pub(crate) async fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        self.inner
            .embedder
            .embed(vec![text.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| EngineError::Internal("the embedder returned no vector".into()))
    }
}

/// A request validated, with its defaults filled in.
pub(crate) fn prepare(mut req: SearchRequest, limits: &SearchLimits) -> Result<SearchRequest> {
    validate(&req, limits)?;
    if req.top_k == 0 {
        req.top_k = limits.default_top_k;
    }
    Ok(req)
}

/// The search itself, on a thread that may block (the caller's blocking
/// trip; Ask runs it in the same trip as its prompt): the indexes, then
/// the hits hydrated from the store. `req` has passed [`prepare`].
pub(crate) fn search_in(
    inner: &Inner,
    coll: &dyn CollectionStorage,
    mut req: SearchRequest,
    vector: Option<&[f32]>,
) -> Result<Vec<SearchHit>> {
    let limits = inner.search_limits;
    if let (Fusion::Adaptive { alpha, .. }, Mode::Hybrid) = (req.fusion, req.mode) {
        // The dense weight follows how well the embedder reads this
        // query (an English vocabulary spells Arabic out letter by
        // letter); tokenizing it is CPU work, so it happens here.
        req.fusion = Fusion::Adaptive {
            alpha,
            coverage: inner.embedder.coverage(&req.query),
        };
    }
    coll.search(&SearchQuery {
        text: &req.query,
        vector,
        mode: req.mode,
        filter: req.filter.as_ref(),
        fusion: req.fusion,
        top_k: req.top_k,
        depth: limits.depth,
    })
}
