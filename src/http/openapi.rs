//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`:
//! built from the compiled `quarry.v1` descriptors (every message and enum
//! as a schema in its proto3 JSON mapping, with the .proto comments as
//! descriptions) and from [`ROUTES`], the one table of the REST routes
//! (a test checks that the router serves each of them).

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde_json::{json, Map, Value};

/// How a route's body and reply travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A JSON body (or none) and a JSON reply.
    Unary,
    /// A JSON body; the reply is Server-Sent Events of the message.
    Events,
    /// No body; the reply is JSON lines of the message.
    Lines,
    /// A JSON-lines body of the request message; a JSON reply.
    LinesIn,
}

/// One REST route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `get`, `post` or `delete`.
    pub method: &'static str,
    /// The path, with `{parameters}`.
    pub path: &'static str,
    /// The gRPC method it calls.
    pub grpc: &'static str,
    /// The request message (its fields not in the path go in the body,
    /// or in the query for GET).
    pub request: &'static str,
    /// The reply message (of each event or line, for streams).
    pub reply: &'static str,
    /// How it travels.
    pub shape: Shape,
    /// One line on what it does.
    pub summary: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    grpc: &'static str,
    request: &'static str,
    reply: &'static str,
    shape: Shape,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        grpc,
        request,
        reply,
        shape,
        summary,
    }
}

/// Every REST route, as [`super::rest::routes`] serves it.
pub const ROUTES: &[Route] = &[
    route(
        "post",
        "/v1/collections",
        "Collections.CreateCollection",
        "CreateCollectionRequest",
        "Collection",
        Shape::Unary,
        "Create a collection",
    ),
    route(
        "get",
        "/v1/collections",
        "Collections.ListCollections",
        "ListCollectionsRequest",
        "ListCollectionsResponse",
        Shape::Unary,
        "List the collections",
    ),
    route(
        "get",
        "/v1/collections/{name}",
        "Collections.GetCollection",
        "GetCollectionRequest",
        "Collection",
        Shape::Unary,
        "Get a collection with its counts",
    ),
    route(
        "delete",
        "/v1/collections/{name}",
        "Collections.DeleteCollection",
        "DeleteCollectionRequest",
        "DeleteCollectionResponse",
        Shape::Unary,
        "Delete a collection with all its documents",
    ),
    route(
        "post",
        "/v1/collections/{collection}/documents",
        "Documents.Upsert",
        "UpsertRequest",
        "UpsertResponse",
        Shape::Unary,
        "Insert or replace documents",
    ),
    route(
        "post",
        "/v1/collections/{collection}/documents/bulk",
        "Documents.BulkIngest",
        "BulkIngestRequest",
        "BulkIngestResponse",
        Shape::LinesIn,
        "Load documents from a JSON-lines body, one BulkIngestRequest per line",
    ),
    route(
        "post",
        "/v1/collections/{collection}/documents/delete",
        "Documents.DeleteDocuments",
        "DeleteDocumentsRequest",
        "DeleteDocumentsResponse",
        Shape::Unary,
        "Delete documents by ids or by a metadata filter",
    ),
    route(
        "get",
        "/v1/collections/{collection}/documents/{id}",
        "Documents.GetDocument",
        "GetDocumentRequest",
        "Document",
        Shape::Unary,
        "Get a document",
    ),
    route(
        "delete",
        "/v1/collections/{collection}/documents/{id}",
        "Documents.DeleteDocuments",
        "GetDocumentRequest",
        "DeleteDocumentsResponse",
        Shape::Unary,
        "Delete a document",
    ),
    route(
        "post",
        "/v1/collections/{collection}/search",
        "Retrieval.Search",
        "SearchRequest",
        "SearchResponse",
        Shape::Unary,
        "Search a collection (hybrid, dense or keyword)",
    ),
    route(
        "post",
        "/v1/collections/{collection}/ask",
        "Rag.Ask",
        "AskRequest",
        "AskEvent",
        Shape::Events,
        "Ask a question; the answer streams as Server-Sent Events",
    ),
    route(
        "post",
        "/v1/embed",
        "Retrieval.Embed",
        "EmbedRequest",
        "EmbedResponse",
        Shape::Unary,
        "Embed texts with the server's model",
    ),
    route(
        "get",
        "/v1/records",
        "History.ListRecords",
        "ListRecordsRequest",
        "ListRecordsResponse",
        Shape::Unary,
        "List Ask records, newest first, with filters",
    ),
    route(
        "get",
        "/v1/records/export",
        "History.ExportRecords",
        "RecordFilter",
        "Record",
        Shape::Lines,
        "Export records as JSON lines, oldest first",
    ),
    route(
        "post",
        "/v1/records/delete",
        "History.DeleteRecords",
        "DeleteRecordsRequest",
        "DeleteRecordsResponse",
        Shape::Unary,
        "Delete records by ids or session",
    ),
    route(
        "get",
        "/v1/records/{id}",
        "History.GetRecord",
        "GetRecordRequest",
        "Record",
        Shape::Unary,
        "Get a record",
    ),
    route(
        "post",
        "/v1/records/{id}/rating",
        "History.RateRecord",
        "RateRecordRequest",
        "Record",
        Shape::Unary,
        "Rate a record",
    ),
];

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// Leading comments by source path, per file.
fn comments(file: &prost_types::FileDescriptorProto) -> HashMap<Vec<i32>, String> {
    let mut out = HashMap::new();
    if let Some(info) = &file.source_code_info {
        for loc in &info.location {
            if let Some(c) = &loc.leading_comments {
                let text = c
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_owned();
                if !text.is_empty() {
                    out.insert(loc.path.clone(), text);
                }
            }
        }
    }
    out
}

/// Schemas of every message and enum of `quarry.v1`.
struct Schemas {
    schemas: Map<String, Value>,
    /// Map-entry messages by full name: (key schema, value schema).
    maps: HashMap<String, Value>,
}

fn type_name(full: &str) -> String {
    full.trim_start_matches(".quarry.v1.").to_owned()
}

impl Schemas {
    fn field(&self, f: &prost_types::FieldDescriptorProto) -> Value {
        let scalar = match f.r#type() {
            Type::Double | Type::Float => json!({"type": "number"}),
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Type::Uint64 | Type::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Type::Uint32 | Type::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            }
            Type::Bool => json!({"type": "boolean"}),
            Type::String => json!({"type": "string"}),
            Type::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Type::Enum | Type::Message | Type::Group => {
                let name = f.type_name();
                if let Some(map) = self.maps.get(name) {
                    return map.clone();
                }
                json!({"$ref": format!("#/components/schemas/{}", type_name(name))})
            }
        };
        if f.label() == Label::Repeated {
            json!({"type": "array", "items": scalar})
        } else {
            scalar
        }
    }

    fn message(
        &mut self,
        prefix: &str,
        m: &DescriptorProto,
        path: Vec<i32>,
        notes: &HashMap<Vec<i32>, String>,
    ) {
        let name = format!("{prefix}{}", m.name());
        for (i, nested) in m.nested_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([3, i as i32]);
            self.message(&format!("{name}."), nested, p, notes);
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([4, i as i32]);
            self.enumeration(&format!("{name}."), e, &p, notes);
        }
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let mut properties = Map::new();
        for (i, f) in m.field.iter().enumerate() {
            let mut schema = self.field(f);
            let mut p = path.clone();
            p.extend([2, i as i32]);
            // (OpenAPI 3.1 allows a description beside a $ref.)
            if let (Some(note), Some(obj)) = (notes.get(&p), schema.as_object_mut()) {
                obj.insert("description".into(), json!(note));
            }
            properties.insert(f.json_name().to_owned(), schema);
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if let Some(note) = notes.get(&path) {
            schema["description"] = json!(note);
        }
        self.schemas.insert(name, schema);
    }

    fn enumeration(
        &mut self,
        prefix: &str,
        e: &EnumDescriptorProto,
        path: &[i32],
        notes: &HashMap<Vec<i32>, String>,
    ) {
        let names: Vec<&str> = e.value.iter().map(|v| v.name()).collect();
        let mut schema = json!({"type": "string", "enum": names});
        if let Some(note) = notes.get(path) {
            schema["description"] = json!(note);
        }
        self.schemas.insert(format!("{prefix}{}", e.name()), schema);
    }
}

/// Map-entry messages (`map<K, V>` fields) as JSON objects.
fn collect_maps(prefix: &str, m: &DescriptorProto, out: &mut Vec<(String, DescriptorProto)>) {
    let name = format!("{prefix}.{}", m.name());
    for nested in &m.nested_type {
        if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            out.push((format!("{name}.{}", nested.name()), nested.clone()));
        }
        collect_maps(&name, nested, out);
    }
}

fn schemas() -> Map<String, Value> {
    let Ok(set) = FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) else {
        return Map::new();
    };
    let files: Vec<_> = set
        .file
        .iter()
        .filter(|f| f.package() == "quarry.v1")
        .collect();
    let mut s = Schemas {
        schemas: Map::new(),
        maps: HashMap::new(),
    };
    let mut entries = Vec::new();
    for file in &files {
        for m in &file.message_type {
            collect_maps(".quarry.v1", m, &mut entries);
        }
    }
    for (full, entry) in entries {
        let value = entry
            .field
            .iter()
            .find(|f| f.number() == 2)
            .map(|f| s.field(f))
            .unwrap_or(json!({}));
        s.maps.insert(
            full,
            json!({"type": "object", "additionalProperties": value}),
        );
    }
    for file in files {
        let notes = comments(file);
        for (i, m) in file.message_type.iter().enumerate() {
            s.message("", m, vec![4, i as i32], &notes);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            s.enumeration("", e, &[5, i as i32], &notes);
        }
    }
    s.schemas
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The route's operation id: its gRPC method's name, unless another route
/// calls the same method (then the method and the path's last part).
fn operation_id(r: &Route) -> String {
    let method = r.grpc.rsplit('.').next().unwrap_or(r.grpc);
    let shared = ROUTES.iter().filter(|o| o.grpc == r.grpc).count() > 1;
    let first = ROUTES
        .iter()
        .find(|o| o.grpc == r.grpc)
        .is_some_and(|o| std::ptr::eq(o, r));
    if !shared || first {
        method.to_owned()
    } else {
        let last = r.path.rsplit('/').next().unwrap_or_default();
        let last = last.trim_matches(|c| c == '{' || c == '}');
        format!("{method}By{}{}", last[..1].to_uppercase(), &last[1..])
    }
}

/// The operation of one route.
fn operation(r: &Route, schemas: &Map<String, Value>) -> Value {
    let params: Vec<&str> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let mut op = json!({
        "operationId": operation_id(r),
        "summary": r.summary,
        "description": format!("Calls the gRPC method quarry.v1.{}.", r.grpc),
        "tags": [r.grpc.split('.').next().unwrap_or_default()],
    });
    let request = schemas.get(r.request);
    if r.method == "get" {
        // The request's other fields are query parameters (a RecordFilter's
        // fields are flattened into the query of the two record listings).
        let mut fields: Vec<(String, Value)> = Vec::new();
        let mut add = |props: Option<&Value>| {
            if let Some(Value::Object(props)) = props {
                for (k, v) in props {
                    let known = fields.iter().any(|(f, _)| f == k);
                    if !params.contains(&k.as_str()) && k != "filter" && !known {
                        fields.push((k.clone(), v.clone()));
                    }
                }
            }
        };
        add(request.and_then(|s| s.get("properties")));
        if r.request == "ListRecordsRequest" {
            add(schemas
                .get("RecordFilter")
                .and_then(|s| s.get("properties")));
        }
        for (k, v) in fields {
            let mut schema = v.clone();
            let description = schema
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .unwrap_or(json!(""));
            parameters.push(json!({"name": k, "in": "query", "required": false, "schema": schema, "description": description}));
        }
    } else if r.method == "post" {
        let content = match r.shape {
            Shape::LinesIn => json!({"application/x-ndjson": {"schema": schema_ref(r.request)}}),
            _ => json!({"application/json": {"schema": schema_ref(r.request)}}),
        };
        op["requestBody"] = json!({
            "required": false,
            "description": "The request message in its proto3 JSON mapping; fields named in the path are filled from it.",
            "content": content,
        });
    }
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    let ok = match r.shape {
        Shape::Unary | Shape::LinesIn => json!({
            "description": "The reply message.",
            "content": {"application/json": {"schema": schema_ref(r.reply)}},
        }),
        Shape::Events => json!({
            "description": "Server-Sent Events: each `event: message` carries one AskEvent as `data:` (citations, then deltas and sentence checks, then done); `event: error` carries an Error.",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-schema": schema_ref(r.reply)}},
        }),
        Shape::Lines => json!({
            "description": "JSON lines, one message each; an error ends the stream with an Error line.",
            "content": {"application/x-ndjson": {"schema": schema_ref(r.reply)}},
        }),
    };
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    for code in [
        "400", "401", "403", "404", "409", "413", "429", "503", "504",
    ] {
        responses.insert(code.into(), json!({"$ref": "#/components/responses/Error"}));
    }
    op["responses"] = Value::Object(responses);
    op
}

fn build() -> Value {
    let mut schemas = schemas();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "The gRPC code's name, e.g. NOT_FOUND."},
                    "message": {"type": "string", "description": "What is wrong, naming the field and the limit."},
                    "requestId": {"type": "string", "description": "The request id of the server's log lines."},
                },
            }},
        }),
    );
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method] = operation(r, &schemas);
    }
    for (method, path, id, summary) in [
        ("post", "/v1/chat/completions", "ChatCompletions", "OpenAI-compatible chat completion: `model` names the collection, the last user message is the question, earlier user/assistant turns the conversation; `stream: true` answers Server-Sent Events of chat.completion.chunk ending with `data: [DONE]`. Quarry's citations and the record id ride in the extra field `quarry`; options Quarry cannot honour (n > 1, tools, response_format, logprobs, penalties) are refused with 400."),
        ("post", "/v1/embeddings", "Embeddings", "OpenAI-compatible embeddings: `input` a string or a list of strings, `encoding_format` float or base64 (little-endian f32); the server's one embedding model answers whatever `model` says."),
        ("get", "/v1/models", "Models", "OpenAI-compatible model list: the collections this key may use, one model each."),
        ("get", "/v1/session", "Session", "Who the key is: its name, role and collection allow-list (the web console shows only what the role may do)."),
    ] {
        let mut op = json!({
            "operationId": id,
            "summary": summary,
            "tags": [if id == "Session" { "Console" } else { "OpenAI" }],
            "responses": {
                "200": {"description": "OpenAI's reply object (see OpenAI's API reference).", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "429": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        });
        if method == "post" {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        paths.insert(path.to_owned(), json!({ method: op }));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Quarry HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON over the quarry.v1 gRPC API: each route calls the gRPC method it names, with the same keys, roles and limits. Bodies and replies are the proto messages in the proto3 JSON mapping (lowerCamelCase names, enums by name, 64-bit integers as strings).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key made with `quarry keys create`."}},
            "responses": {"Error": {
                "description": "The call failed; the HTTP status matches the gRPC code.",
                "content": {"application/json": {"schema": schema_ref("Error")}},
            }},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_reference_resolves_and_messages_carry_their_comments() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but missing"
            );
        }
        let search = &schemas["SearchRequest"];
        assert!(search["properties"]["topK"].is_object(), "{search}");
        assert!(
            search["properties"]["collection"]["description"].is_string(),
            "{search}"
        );
        assert_eq!(schemas["Hit"]["properties"]["chunkId"]["type"], "string");
        assert!(schemas["SearchMode"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("SEARCH_MODE_DENSE")));
        assert_eq!(
            schemas["Hit"]["properties"]["metadata"]["type"], "object",
            "maps are objects"
        );
        assert_eq!(doc["paths"].as_object().unwrap().len(), 18);
        let mut ids: Vec<String> = ROUTES.iter().map(operation_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique: {ids:?}");
    }
}
