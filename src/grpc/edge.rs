//! The opening every handler shares, written once: the method's required
//! role from one table, the caller's principal, the call's metrics and
//! log span, conversion of the request (which validates it), the key's
//! collection allow-list, and the mapping of engine errors. A handler
//! that fits [`unary`] is one call: convert, call the engine, convert
//! back. Streaming handlers use [`opening`] for the same checks.

use std::future::Future;

use quarry_core::{CollectionName, InvalidArgument};
use quarry_engine::EngineError;
use tonic::{Request, Response, Status};

use super::{invalid, to_status};
use crate::auth::{Principal, Role};

/// The role each method needs. A method missing here is refused.
pub const METHOD_ROLES: &[(&str, Role)] = &[
    ("Collections.CreateCollection", Role::Admin),
    ("Collections.DeleteCollection", Role::Admin),
    ("Collections.GetCollection", Role::Reader),
    ("Collections.ListCollections", Role::Reader),
    ("Documents.Upsert", Role::Writer),
    ("Documents.BulkIngest", Role::Writer),
    ("Documents.DeleteDocuments", Role::Writer),
    ("Documents.GetDocument", Role::Reader),
    ("Retrieval.Search", Role::Reader),
    ("Retrieval.Embed", Role::Reader),
    ("Rag.Ask", Role::Reader),
    // History's own rules (a key sees its own records unless it may see
    // all) are applied by the handlers.
    ("History.ListRecords", Role::Reader),
    ("History.GetRecord", Role::Reader),
    ("History.RateRecord", Role::Reader),
    ("History.ExportRecords", Role::Reader),
    ("History.DeleteRecords", Role::Reader),
];

/// The caller of `method`, if its key has the role the method needs.
pub fn opening<T>(method: &'static str, request: &Request<T>) -> Result<Principal, Status> {
    let who = Principal::of(request)?;
    let role = METHOD_ROLES
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, r)| *r)
        .ok_or_else(|| Status::internal(format!("{method} has no role in the table")))?;
    who.require(role, method)?;
    Ok(who)
}

/// A converted request: the collection it works on, if any, which the
/// caller's key must be allowed to use.
pub trait Scoped {
    /// The collection, or `None` for requests not about one.
    fn collection(&self) -> Option<&CollectionName>;
}

/// Runs a unary call: the [`opening`], conversion of the request into `R`
/// (INVALID_ARGUMENT naming the field), the allow-list, `call` with the
/// caller and the request, and conversion of its result (engine errors
/// mapped once, in [`to_status`]).
pub async fn unary<P, R, T, O, F, Fut>(
    method: &'static str,
    request: Request<P>,
    call: F,
) -> Result<Response<O>, Status>
where
    R: TryFrom<P, Error = InvalidArgument> + Scoped,
    F: FnOnce(Principal, R) -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
    O: From<T>,
{
    crate::metrics::observed(method, async move {
        let who = opening(method, &request)?;
        let req = R::try_from(request.into_inner()).map_err(invalid)?;
        if let Some(c) = req.collection() {
            who.may_use(c.as_str())?;
        }
        let out = call(who, req).await.map_err(to_status)?;
        Ok(Response::new(O::from(out)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_every_service_has_exactly_one_role() {
        // The methods as the .proto files declare them.
        let files = [
            include_str!("../../proto/quarry/v1/collections.proto"),
            include_str!("../../proto/quarry/v1/documents.proto"),
            include_str!("../../proto/quarry/v1/retrieval.proto"),
            include_str!("../../proto/quarry/v1/rag.proto"),
            include_str!("../../proto/quarry/v1/history.proto"),
        ];
        let mut declared = Vec::new();
        for file in files {
            let mut service = "";
            for line in file.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.split_whitespace().next().unwrap_or("");
                } else if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap_or("").trim();
                    declared.push(format!("{service}.{method}"));
                }
            }
        }
        declared.sort();
        let mut table: Vec<String> = METHOD_ROLES.iter().map(|(m, _)| (*m).to_owned()).collect();
        table.sort();
        assert_eq!(table, declared);
    }
}
