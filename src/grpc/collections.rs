//! `quarry.v1.Collections`: create, get, list and delete collections.

use quarry_core::CollectionName;
use quarry_engine::{CreateCollection, Engine};
use tonic::{Request, Response, Status};

use super::edge::{opening, unary};
use super::{invalid, to_status};
use crate::proto;

/// The Collections service.
pub struct CollectionsService {
    engine: Engine,
}

impl CollectionsService {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::collections_server::Collections for CollectionsService {
    async fn create_collection(
        &self,
        request: Request<proto::CreateCollectionRequest>,
    ) -> Result<Response<proto::Collection>, Status> {
        crate::metrics::observed("Collections.CreateCollection", async move {
            opening("Collections.CreateCollection", &request)?;
            let req = CreateCollection::try_from(request.into_inner()).map_err(invalid)?;
            let info = self
                .engine
                .create_collection(req)
                .await
                .map_err(to_status)?;
            Ok(Response::new(info.into()))
        })
        .await
    }

    async fn get_collection(
        &self,
        request: Request<proto::GetCollectionRequest>,
    ) -> Result<Response<proto::Collection>, Status> {
        unary(
            "Collections.GetCollection",
            request,
            |_, name: CollectionName| self.engine.get_collection(name),
        )
        .await
    }

    async fn list_collections(
        &self,
        request: Request<proto::ListCollectionsRequest>,
    ) -> Result<Response<proto::ListCollectionsResponse>, Status> {
        crate::metrics::observed("Collections.ListCollections", async move {
            let who = opening("Collections.ListCollections", &request)?;
            let proto::ListCollectionsRequest {} = request.into_inner();
            let list = self.engine.list_collections().await.map_err(to_status)?;
            Ok(Response::new(proto::ListCollectionsResponse {
                // A key limited to some collections sees only those.
                collections: list
                    .into_iter()
                    .filter(|c| who.may_use(c.name.as_str()).is_ok())
                    .map(Into::into)
                    .collect(),
            }))
        })
        .await
    }

    async fn delete_collection(
        &self,
        request: Request<proto::DeleteCollectionRequest>,
    ) -> Result<Response<proto::DeleteCollectionResponse>, Status> {
        crate::metrics::observed("Collections.DeleteCollection", async move {
            // Admin keys manage collections; no allow-list applies.
            opening("Collections.DeleteCollection", &request)?;
            let name = CollectionName::try_from(request.into_inner()).map_err(invalid)?;
            let deleted = self
                .engine
                .delete_collection(name)
                .await
                .map_err(to_status)?;
            Ok(Response::new(deleted.into()))
        })
        .await
    }
}
