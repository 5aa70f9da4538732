//! End to end over HTTP: every REST route of the real server with its
//! success and its error statuses, API keys and roles, an Ask streamed as
//! Server-Sent Events to the end and one dropped midway (its record says
//! cancelled), a JSON-lines bulk load with bad documents and a bad line,
//! and an over-size body refused with 413 and nothing stored.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{create_key, data_dir, TestServer};

/// A small client: every call returns the status and the JSON body.
struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
        }
    }

    fn request(&self, method: &str, path: &str, key: Option<&str>) -> ureq::Request {
        let mut r = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.set("authorization", &format!("Bearer {k}"));
        }
        r
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self.request(method, path, key);
        let result = match body {
            Some(b) => r.send_json(b),
            None => r.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    fn raw(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let response = match self.request(method, path, key).send_string(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// The error body's code, checking its shape.
fn code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Server-Sent Events of a response, as (event, data) pairs.
fn events(reader: impl std::io::Read) -> impl Iterator<Item = (String, Value)> {
    let mut lines = BufReader::new(reader).lines();
    std::iter::from_fn(move || {
        let mut event = String::new();
        let mut data = String::new();
        loop {
            let line = lines.next()?.ok()?;
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
    })
}

const PASSAGES: [(&str, &str); 3] = [
    (
        "otter",
        "The river otter eats fish, crayfish and crabs. It hunts at night in rivers and lakes.",
    ),
    (
        "granite",
        "Granite is an igneous rock made mostly of quartz and feldspar.",
    ),
    (
        "aurora",
        "The aurora borealis glows green when solar wind strikes oxygen high in the atmosphere.",
    ),
];

#[test]
fn every_route_answers_with_its_status_and_keys_and_roles_apply() {
    let dir = data_dir();
    let keys = dir.path().join("keys.toml");
    let admin = create_key(&keys, "boss", "admin", &[]);
    let writer = create_key(&keys, "loader", "writer", &[]);
    let reader = create_key(&keys, "viewer", "reader", &[]);
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &[
            "--keys-file",
            keys.to_str().unwrap(),
            "--max-message-bytes",
            "65536",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let http = Http::new(
        server
            .http_addr
            .as_deref()
            .expect("the HTTP listener is on"),
    );
    let (a, w, r) = (
        Some(admin.as_str()),
        Some(writer.as_str()),
        Some(reader.as_str()),
    );

    // Keys: none, unknown, and a role too small.
    let (s, body) = http.call("GET", "/v1/collections", None, None);
    assert_eq!((s, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (s, body) = http.call("GET", "/v1/collections", Some("qk_not_a_key"), None);
    assert_eq!((s, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (s, body) = http.call("POST", "/v1/collections", r, Some(json!({"name": "docs"})));
    assert_eq!((s, code(&body)), (403, "PERMISSION_DENIED"), "{body}");
    assert!(body["error"]["requestId"].as_str().is_some(), "{body}");

    // Collections.
    let (s, body) = http.call("POST", "/v1/collections", a, Some(json!({"name": "docs"})));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["name"], "docs");
    let (s, body) = http.call("POST", "/v1/collections", a, Some(json!({"name": "docs"})));
    assert_eq!((s, code(&body)), (409, "ALREADY_EXISTS"), "{body}");
    let (s, body) = http.call(
        "POST",
        "/v1/collections",
        a,
        Some(json!({"name": "bad name!"})),
    );
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (s, body) = http.call("POST", "/v1/collections", a, Some(json!({"nmae": "typo"})));
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nmae"),
        "{body}"
    );
    let (s, body) = http.call("GET", "/v1/collections", r, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["collections"][0]["name"], "docs", "{body}");
    let (s, body) = http.call("GET", "/v1/collections/nope", r, None);
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"), "{body}");

    // Documents.
    let docs: Vec<Value> = PASSAGES
        .iter()
        .map(|(id, text)| json!({"id": id, "text": text, "metadata": {"kind": {"stringValue": "fact"}}}))
        .collect();
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        r,
        Some(json!({"documents": docs})),
    );
    assert_eq!((s, code(&body)), (403, "PERMISSION_DENIED"), "{body}");
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        w,
        Some(json!({"documents": docs})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["added"], "3",
        "int64 fields are strings in proto3 JSON: {body}"
    );
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        w,
        Some(json!({"documents": [{"id": "", "text": "x"}]})),
    );
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("documents[0].id"),
        "{body}"
    );
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        w,
        Some(json!({"collection": "other", "documents": docs})),
    );
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (s, body) = http.call("GET", "/v1/collections/docs/documents/granite", r, None);
    assert_eq!(s, 200, "{body}");
    assert!(body["text"].as_str().unwrap().contains("quartz"), "{body}");
    let (s, body) = http.call("GET", "/v1/collections/docs/documents/missing", r, None);
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"), "{body}");
    let (s, body) = http.call("GET", "/v1/collections/docs", r, None);
    assert_eq!(
        (s, body["documentCount"].as_str()),
        (200, Some("3")),
        "{body}"
    );

    // Over the size limit: 413, nothing stored.
    let big = "x".repeat(70_000);
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        w,
        Some(json!({"documents": [{"id": "big", "text": big}]})),
    );
    assert_eq!((s, code(&body)), (413, "RESOURCE_EXHAUSTED"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("65536"),
        "{body}"
    );
    let (_, body) = http.call("GET", "/v1/collections/docs/documents/big", r, None);
    assert_eq!(code(&body), "NOT_FOUND");

    // Search and Embed.
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/search",
        r,
        Some(json!({"query": "which rock has quartz", "topK": 2})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["hits"][0]["documentId"], "granite", "{body}");
    assert!(body["hits"][0]["score"].as_f64().is_some(), "{body}");
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/search",
        r,
        Some(json!({"query": "rock", "topK": 100000})),
    );
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("top_k"),
        "{body}"
    );
    let (s, body) = http.call(
        "POST",
        "/v1/embed",
        r,
        Some(json!({"texts": ["granite", "otter"]})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2, "{body}");

    // Bulk: JSON lines; a bad document is reported, a bad line ends the load.
    let lines = [
        json!({"documents": [{"id": "b1", "text": "Basalt is a dark volcanic rock."}]}).to_string(),
        json!({"documents": [{"id": "b2", "text": ""}, {"id": "b3", "text": "Obsidian is volcanic glass."}]}).to_string(),
    ]
    .join("\n");
    let (s, body) = http.raw("POST", "/v1/collections/docs/documents/bulk", w, &lines);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["added"], "2", "{body}");
    assert_eq!(body["failed"][0]["documentId"], "b2", "{body}");
    let bad = format!(
        "{}\nnot json\n",
        json!({"documents": [{"id": "b4", "text": "Pumice floats."}]})
    );
    let (s, body) = http.raw("POST", "/v1/collections/docs/documents/bulk", w, &bad);
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );
    let (s, body) = http.raw("POST", "/v1/collections/docs/documents/bulk", r, &lines);
    assert_eq!((s, code(&body)), (403, "PERMISSION_DENIED"), "{body}");

    // Ask, extractive, read to the end.
    let response = http
        .request("POST", "/v1/collections/docs/ask", r)
        .send_json(json!({"question": "What does the river otter eat?", "answerMode": "ANSWER_MODE_EXTRACTIVE"}))
        .unwrap();
    assert_eq!(response.content_type(), "text/event-stream");
    let all: Vec<(String, Value)> = events(response.into_reader()).collect();
    assert!(all.iter().all(|(e, _)| e == "message"), "{all:?}");
    assert_eq!(
        all[0].1["citations"]["citations"][0]["documentId"], "otter",
        "{all:?}"
    );
    let done = &all.last().unwrap().1["done"];
    let record_id = done["recordId"]
        .as_str()
        .unwrap_or_else(|| panic!("{all:?}"))
        .to_owned();
    let answer: String = all
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect();
    assert!(answer.contains("fish"), "{answer}");

    // A grounded Ask dropped after its first event: recorded as cancelled.
    let response = http
        .request("POST", "/v1/collections/docs/ask", r)
        .send_json(json!({
            "question": "Why does the aurora glow green?",
            "sessionId": "cut-short",
            "generation": {"maxNewTokens": 400}
        }))
        .unwrap();
    let mut stream = events(response.into_reader());
    let (_, first) = stream.next().unwrap();
    assert!(first.get("citations").is_some(), "{first}");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(120);
    let cancelled = loop {
        let (s, body) = http.call("GET", "/v1/records?sessionId=cut-short", r, None);
        assert_eq!(s, 200, "{body}");
        if let Some(record) = body["records"].get(0) {
            break record.clone();
        }
        assert!(Instant::now() < deadline, "no record of the dropped Ask");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        cancelled["finishReason"], "FINISH_REASON_CANCELLED",
        "{cancelled}"
    );

    // A deadline that passes: 504.
    let response = http
        .request("POST", "/v1/collections/docs/ask", r)
        .set("x-timeout-ms", "1")
        .send_json(json!({"question": "What is granite?"}));
    let status = match response {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 504);

    // History: get, rate, list with filters, export, delete.
    let (s, body) = http.call("GET", &format!("/v1/records/{record_id}"), r, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["question"], "What does the river otter eat?", "{body}");
    let (s, body) = http.call(
        "POST",
        &format!("/v1/records/{record_id}/rating"),
        r,
        Some(json!({"score": 4, "comment": "good"})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["rating"], 4, "{body}");
    assert_eq!(body["comment"], "good", "{body}");
    let (s, body) = http.call(
        "POST",
        &format!("/v1/records/{record_id}/rating"),
        r,
        Some(json!({"score": 9})),
    );
    assert_eq!((s, code(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (s, body) = http.call("GET", "/v1/records/00000000deadbeef", r, None);
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"), "{body}");
    let (s, body) = http.call(
        "GET",
        "/v1/records?collection=docs&rated=true&pageSize=10",
        r,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let listed = body["records"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["id"], record_id.as_str());
    let export = http
        .request("GET", "/v1/records/export?collection=docs", r)
        .call()
        .unwrap();
    assert_eq!(export.content_type(), "application/x-ndjson");
    let exported: Vec<Value> = BufReader::new(export.into_reader())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(exported.len() >= 2, "{exported:?}");
    assert!(
        exported.iter().all(|r| r["collection"] == "docs"),
        "{exported:?}"
    );
    let (s, body) = http.call(
        "POST",
        "/v1/records/delete",
        r,
        Some(json!({"sessionId": "cut-short"})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["deleted"], "1", "{body}");

    // Deletes, and an unknown route.
    let (s, body) = http.call("DELETE", "/v1/collections/docs/documents/aurora", w, None);
    assert_eq!(
        (s, body["documentsDeleted"].as_str()),
        (200, Some("1")),
        "{body}"
    );
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents/delete",
        w,
        Some(json!({"filter": {"equals": {"key": "kind", "value": {"stringValue": "fact"}}}})),
    );
    assert_eq!(s, 200, "{body}");
    let (s, body) = http.call("GET", "/v1/nothing/here", r, None);
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"), "{body}");
    let (s, body) = http.call("DELETE", "/v1/collections/docs", w, None);
    assert_eq!((s, code(&body)), (403, "PERMISSION_DENIED"), "{body}");
    let (s, body) = http.call("DELETE", "/v1/collections/docs", a, None);
    assert_eq!(s, 200, "{body}");
    let (s, body) = http.call("GET", "/v1/collections/docs", r, None);
    assert_eq!((s, code(&body)), (404, "NOT_FOUND"), "{body}");

    // The calls are in the same metrics as gRPC's, refusals included.
    let metrics = ureq::get(&format!(
        "http://{}/metrics",
        server.metrics_addr.as_deref().unwrap()
    ))
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    for needle in [
        r#"method="Collections.CreateCollection""#,
        r#"method="Retrieval.Search""#,
        r#"method="Rag.Ask""#,
        r#"code="AlreadyExists""#,
    ] {
        assert!(metrics.contains(needle), "{needle} not in the metrics");
    }
    server.stop();
}

/// A gRPC-Web call over HTTP/1.1, framed by hand as a browser client
/// frames it: the reply's messages and its trailers.
fn grpc_web(
    base: &str,
    method: &str,
    key: Option<&str>,
    message: &impl prost::Message,
) -> (Vec<Vec<u8>>, String) {
    let payload = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let mut request = ureq::post(&format!("{base}/{method}"))
        .set("content-type", "application/grpc-web+proto")
        .set("x-grpc-web", "1");
    if let Some(k) = key {
        request = request.set("authorization", &format!("Bearer {k}"));
    }
    let response = request.send_bytes(&body).unwrap();
    assert_eq!(response.status(), 200);
    let header_status = response.header("grpc-status").map(str::to_owned);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut raw).unwrap();
    let (mut messages, mut trailers) = (
        Vec::new(),
        header_status
            .map(|s| format!("grpc-status:{s}"))
            .unwrap_or_default(),
    );
    let mut at = 0;
    while at + 5 <= raw.len() {
        let flag = raw[at];
        let len = u32::from_be_bytes(raw[at + 1..at + 5].try_into().unwrap()) as usize;
        let frame = raw[at + 5..at + 5 + len].to_vec();
        if flag & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(&frame));
        } else {
            messages.push(frame);
        }
        at += 5 + len;
    }
    (messages, trailers)
}

#[test]
fn grpc_web_clients_reach_the_same_services_on_the_http_port() {
    use prost::Message;
    use quarry::proto;
    let dir = data_dir();
    let keys = dir.path().join("keys.toml");
    let admin = create_key(&keys, "boss", "admin", &[]);
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &["--keys-file", keys.to_str().unwrap()],
    );
    let base = server.http_addr.clone().unwrap();
    let create = proto::CreateCollectionRequest {
        name: "web".into(),
        settings: None,
        placement: None,
    };
    let (messages, trailers) = grpc_web(
        &base,
        "quarry.v1.Collections/CreateCollection",
        Some(&admin),
        &create,
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let created = proto::Collection::decode(messages[0].as_slice()).unwrap();
    assert_eq!(created.name, "web");
    let (messages, trailers) = grpc_web(
        &base,
        "quarry.v1.Collections/ListCollections",
        Some(&admin),
        &proto::ListCollectionsRequest {},
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let list = proto::ListCollectionsResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(list.collections.len(), 1);
    // Without a key: the interceptor's refusal, as gRPC status 16.
    let (messages, trailers) = grpc_web(
        &base,
        "quarry.v1.Collections/ListCollections",
        None,
        &proto::ListCollectionsRequest {},
    );
    assert!(messages.is_empty());
    assert!(trailers.contains("grpc-status:16"), "{trailers}");
    // The REST routes beside it still answer plain HTTP/1.1.
    let listed = ureq::get(&format!("{base}/v1/collections"))
        .set("authorization", &format!("Bearer {admin}"))
        .call()
        .unwrap()
        .into_json::<Value>()
        .unwrap();
    assert_eq!(listed["collections"][0]["name"], "web");
    server.stop();
}

/// /openapi.json is a valid OpenAPI 3.1 document (checked by
/// openapi-spec-validator, a real validator), and the router serves every
/// route it lists.
#[test]
fn the_openapi_document_is_valid_and_lists_the_served_routes() {
    let dir = data_dir();
    let server = TestServer::start(&dir.path().join("data"));
    let base = server.http_addr.clone().unwrap();
    let text = ureq::get(&format!("{base}/openapi.json"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let venv = crate::common::python_venv();
    let out = Command::new(venv.join("bin/openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each listed route is routed: anything but the fallback's 404 or 405.
    let http = Http::new(&base);
    let mut seen = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "0000000000000001"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in methods.as_object().unwrap().keys() {
            let (status, body) = match method.as_str() {
                "get" | "delete" => http.call(&method.to_uppercase(), &concrete, None, None),
                _ => http.raw("POST", &concrete, None, "{}"),
            };
            let fallback = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route"));
            assert!(
                !fallback && status != 405,
                "{method} {path}: {status} {body}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 21);
    server.stop();
}

/// The official `openai` Python package against the real server: models,
/// a completion (with Quarry's citations), a streamed completion to the
/// end with usage, embeddings in both encodings equal to Retrieval.Embed's
/// vectors, and a parameter it cannot honour refused with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_works_against_the_server() {
    use quarry::proto;
    let dir = data_dir();
    let keys = dir.path().join("keys.toml");
    let admin = create_key(&keys, "boss", "admin", &[]);
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &["--keys-file", keys.to_str().unwrap()],
    );
    let base = server.http_addr.clone().unwrap();
    let http = Http::new(&base);
    let a = Some(admin.as_str());
    let (s, body) = http.call("POST", "/v1/collections", a, Some(json!({"name": "docs"})));
    assert_eq!(s, 200, "{body}");
    let docs: Vec<Value> = PASSAGES
        .iter()
        .map(|(id, text)| json!({"id": id, "text": text}))
        .collect();
    let (s, body) = http.call(
        "POST",
        "/v1/collections/docs/documents",
        a,
        Some(json!({"documents": docs})),
    );
    assert_eq!(s, 200, "{body}");

    let venv = crate::common::python_venv();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/openai_client.py");
    let key = admin.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("bin/python"))
            .arg(script)
            .arg(&base)
            .arg(&key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(seen["models"], json!(["docs"]), "{seen}");
    let completion = &seen["completion"];
    assert!(
        completion["content"].as_str().unwrap().contains("fish"),
        "{completion}"
    );
    assert_eq!(completion["finish_reason"], "stop", "{completion}");
    assert_eq!(
        completion["quarry"]["citations"][0]["documentId"], "otter",
        "{completion}"
    );
    assert!(
        completion["quarry"]["done"]["recordId"].as_str().is_some(),
        "{completion}"
    );

    let stream = &seen["stream"];
    assert!(
        !stream["content"].as_str().unwrap().trim().is_empty(),
        "{stream}"
    );
    assert!(
        matches!(stream["finish_reason"].as_str(), Some("stop" | "length")),
        "{stream}"
    );
    assert!(stream["usage"].as_u64().is_some_and(|u| u > 0), "{stream}");
    let extras = stream["quarry"].as_array().unwrap();
    assert!(
        extras.first().is_some_and(|e| e["citations"].is_array()),
        "{stream}"
    );
    let record = extras.last().unwrap()["done"]["recordId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = http.call("GET", &format!("/v1/records/{record}"), a, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["question"], "What does the river otter eat?", "{body}");

    // Embeddings equal Retrieval.Embed's over gRPC (base64 decodes to the
    // same f32s).
    let channel = server.channel().await;
    let mut request = tonic::Request::new(proto::EmbedRequest {
        texts: vec![
            "granite is an igneous rock".into(),
            "otters eat fish".into(),
        ],
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let want: Vec<Vec<f64>> = proto::retrieval_client::RetrievalClient::new(channel)
        .embed(request)
        .await
        .unwrap()
        .into_inner()
        .embeddings
        .into_iter()
        .map(|e| e.values.into_iter().map(f64::from).collect())
        .collect();
    for encoding in ["embeddings_base64", "embeddings_float"] {
        let got = seen[encoding].as_array().unwrap();
        assert_eq!(got.len(), 2, "{encoding}");
        for (g, w) in got.iter().zip(&want) {
            let g: Vec<f64> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(g.len(), w.len(), "{encoding}");
            let diff = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // Floats through JSON round-trip exactly enough; base64 exactly.
            assert!(diff < 1e-6, "{encoding}: differs by {diff}");
        }
    }
    let refused = &seen["refused"];
    assert_eq!(refused["status"], 400, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("n:"),
        "{refused}"
    );
    server.stop();
}
