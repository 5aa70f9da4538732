//! `quarry.v1.History`: the stored prompt/response records of Ask.
//!
//! Any key may read its own records; only admin keys see, rate and delete
//! everyone's. A record of someone else is NOT_FOUND to a non-admin, so
//! its existence does not leak.

use std::pin::Pin;

use quarry_core::{Record, RecordId};
use quarry_engine::{Engine, RecordFilter, RecordSelector};
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Code, Request, Response, Status};

use super::convert::{delete_from_proto, list_from_proto, record_filter_from_proto, record_id};
use super::edge::opening;
use super::{invalid, status, to_status};
use crate::auth::Principal;
use crate::proto;

/// Limits a filter to the caller's own records unless it is an admin.
fn own(who: &Principal, mut filter: RecordFilter) -> RecordFilter {
    if !who.sees_all_history() {
        filter.principal = Some(who.name.clone());
    }
    filter
}

/// The History service.
pub struct HistoryService {
    engine: Engine,
}

impl HistoryService {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

impl HistoryService {
    /// The record, if the caller may see it (NOT_FOUND otherwise).
    async fn owned(&self, who: &Principal, id: RecordId) -> Result<Record, Status> {
        let record = self.engine.get_record(id).await.map_err(to_status)?;
        if !who.sees_all_history() && record.principal != who.name {
            return Err(status(Code::NotFound, format!("record {id} not found")));
        }
        Ok(record)
    }
}

#[tonic::async_trait]
impl proto::history_server::History for HistoryService {
    type ExportRecordsStream = Pin<Box<dyn Stream<Item = Result<proto::Record, Status>> + Send>>;

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        crate::metrics::observed("History.ListRecords", async move {
            let who = opening("History.ListRecords", &request)?;
            let (filter, page_size, token) =
                list_from_proto(request.into_inner()).map_err(invalid)?;
            let page = self
                .engine
                .list_records(own(&who, filter), page_size, token)
                .await
                .map_err(to_status)?;
            Ok(Response::new(proto::ListRecordsResponse {
                records: page.records.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            }))
        })
        .await
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        crate::metrics::observed("History.GetRecord", async move {
            let who = opening("History.GetRecord", &request)?;
            let proto::GetRecordRequest { id } = request.into_inner();
            let id = record_id(&id, "id").map_err(invalid)?;
            let record = self.owned(&who, id).await?;
            Ok(Response::new(record.into()))
        })
        .await
    }

    async fn rate_record(
        &self,
        request: Request<proto::RateRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        crate::metrics::observed("History.RateRecord", async move {
            let who = opening("History.RateRecord", &request)?;
            let proto::RateRecordRequest { id, score, comment } = request.into_inner();
            let id = record_id(&id, "id").map_err(invalid)?;
            self.owned(&who, id).await?;
            let record = self
                .engine
                .rate_record(id, score, comment)
                .await
                .map_err(to_status)?;
            Ok(Response::new(record.into()))
        })
        .await
    }

    async fn export_records(
        &self,
        request: Request<proto::ExportRecordsRequest>,
    ) -> Result<Response<Self::ExportRecordsStream>, Status> {
        crate::metrics::observed("History.ExportRecords", async move {
            let who = opening("History.ExportRecords", &request)?;
            let proto::ExportRecordsRequest { filter } = request.into_inner();
            let records = self
                .engine
                .export_records(own(
                    &who,
                    record_filter_from_proto(filter).map_err(invalid)?,
                ))
                .map_err(to_status)?;
            let stream = ReceiverStream::new(records)
                .map(|record| record.map(Into::into).map_err(to_status));
            Ok(Response::new(Box::pin(stream) as Self::ExportRecordsStream))
        })
        .await
    }

    async fn delete_records(
        &self,
        request: Request<proto::DeleteRecordsRequest>,
    ) -> Result<Response<proto::DeleteRecordsResponse>, Status> {
        crate::metrics::observed("History.DeleteRecords", async move {
            let who = opening("History.DeleteRecords", &request)?;
            let selector = delete_from_proto(request.into_inner()).map_err(invalid)?;
            // A non-admin deletes only its own records: those of the ids it
            // names, or of the session, that are its.
            let selector = if who.sees_all_history() {
                selector
            } else {
                let filter = match &selector {
                    RecordSelector::Session(s) => RecordFilter {
                        session_id: Some(s.clone()),
                        ..Default::default()
                    },
                    RecordSelector::Ids(_) => RecordFilter::default(),
                };
                let mut mine = Vec::new();
                let mut records = self
                    .engine
                    .export_records(own(&who, filter))
                    .map_err(to_status)?;
                while let Some(record) = records.recv().await {
                    let record = record.map_err(to_status)?;
                    match &selector {
                        RecordSelector::Ids(ids) if !ids.contains(&record.id) => {}
                        _ => mine.push(record.id),
                    }
                }
                if mine.is_empty() {
                    return Ok(Response::new(proto::DeleteRecordsResponse { deleted: 0 }));
                }
                RecordSelector::Ids(mine)
            };
            let deleted = self
                .engine
                .delete_records(selector)
                .await
                .map_err(to_status)?;
            Ok(Response::new(proto::DeleteRecordsResponse { deleted }))
        })
        .await
    }
}
