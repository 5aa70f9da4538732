//! `quarry.v1.History`: the stored prompt/response records of Ask.

use std::pin::Pin;

use quarry_engine::Engine;
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{delete_from_proto, list_from_proto, record_filter_from_proto, record_id};
use super::{invalid, to_status};
use crate::proto;

/// The History service.
pub struct HistoryService {
    engine: Engine,
}

impl HistoryService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::history_server::History for HistoryService {
    type ExportRecordsStream = Pin<Box<dyn Stream<Item = Result<proto::Record, Status>> + Send>>;

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let (filter, page_size, token) = list_from_proto(request.into_inner()).map_err(invalid)?;
        let page = self
            .engine
            .list_records(filter, page_size, token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ListRecordsResponse {
            records: page.records.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        let proto::GetRecordRequest { id } = request.into_inner();
        let id = record_id(&id, "id").map_err(invalid)?;
        let record = self.engine.get_record(id).await.map_err(to_status)?;
        Ok(Response::new(record.into()))
    }

    async fn rate_record(
        &self,
        request: Request<proto::RateRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        let proto::RateRecordRequest { id, score, comment } = request.into_inner();
        let id = record_id(&id, "id").map_err(invalid)?;
        let record = self
            .engine
            .rate_record(id, score, comment)
            .await
            .map_err(to_status)?;
        Ok(Response::new(record.into()))
    }

    async fn export_records(
        &self,
        request: Request<proto::ExportRecordsRequest>,
    ) -> Result<Response<Self::ExportRecordsStream>, Status> {
        let proto::ExportRecordsRequest { filter } = request.into_inner();
        let records = self
            .engine
            .export_records(record_filter_from_proto(filter))
            .map_err(to_status)?;
        let stream =
            ReceiverStream::new(records).map(|record| record.map(Into::into).map_err(to_status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn delete_records(
        &self,
        request: Request<proto::DeleteRecordsRequest>,
    ) -> Result<Response<proto::DeleteRecordsResponse>, Status> {
        let selector = delete_from_proto(request.into_inner()).map_err(invalid)?;
        let deleted = self
            .engine
            .delete_records(selector)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::DeleteRecordsResponse { deleted }))
    }
}
