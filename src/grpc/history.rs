//! `quarry.v1.History`: the stored prompt/response records.
//!
//! Not yet served: records are written by Ask, which has not landed. Until
//! then each method answers UNIMPLEMENTED naming what it waits for.

use std::pin::Pin;

use quarry_engine::Engine;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::not_yet;
use crate::proto;

const HISTORY: &str = "the prompt history of Rag.Ask";

/// The History service.
pub struct HistoryService {
    #[allow(dead_code)] // used once history is served
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
        _request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        Err(not_yet("History.ListRecords", HISTORY))
    }

    async fn get_record(
        &self,
        _request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        Err(not_yet("History.GetRecord", HISTORY))
    }

    async fn rate_record(
        &self,
        _request: Request<proto::RateRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        Err(not_yet("History.RateRecord", HISTORY))
    }

    async fn export_records(
        &self,
        _request: Request<proto::ExportRecordsRequest>,
    ) -> Result<Response<Self::ExportRecordsStream>, Status> {
        Err(not_yet("History.ExportRecords", HISTORY))
    }

    async fn delete_records(
        &self,
        _request: Request<proto::DeleteRecordsRequest>,
    ) -> Result<Response<proto::DeleteRecordsResponse>, Status> {
        Err(not_yet("History.DeleteRecords", HISTORY))
    }
}
