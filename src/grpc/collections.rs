//! `quarry.v1.Collections`: create, get, list and delete collections.

use quarry_core::CollectionName;
use quarry_engine::{CreateCollection, Engine};
use tonic::{Request, Response, Status};

use super::{invalid, to_status};
use crate::auth::{Principal, Role};
use crate::proto;

/// The Collections service.
pub struct CollectionsService {
    engine: Engine,
}

impl CollectionsService {
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
            Principal::of(&request)?.require(Role::Admin, "Collections.CreateCollection")?;
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
        crate::metrics::observed("Collections.GetCollection", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Reader, "Collections.GetCollection")?;
            let name = CollectionName::try_from(request.into_inner()).map_err(invalid)?;
            who.may_use(name.as_str())?;
            let info = self.engine.get_collection(name).await.map_err(to_status)?;
            Ok(Response::new(info.into()))
        })
        .await
    }

    async fn list_collections(
        &self,
        request: Request<proto::ListCollectionsRequest>,
    ) -> Result<Response<proto::ListCollectionsResponse>, Status> {
        crate::metrics::observed("Collections.ListCollections", async move {
            let who = Principal::of(&request)?;
            who.require(Role::Reader, "Collections.ListCollections")?;
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
            Principal::of(&request)?.require(Role::Admin, "Collections.DeleteCollection")?;
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
