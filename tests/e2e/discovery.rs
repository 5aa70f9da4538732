//! End to end: what a client that knows nothing but the server address can
//! discover: health, reflection (v1 and v1alpha), and every method
//! answering for the content of a request, never UNIMPLEMENTED.

use crate::common;

use common::{data_dir, TestServer};
use quarry::grpc::SERVICE_NAMES;
use quarry::proto;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_for_the_server_and_every_service() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let mut health = HealthClient::new(server.channel().await);
    for service in std::iter::once("").chain(SERVICE_NAMES) {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    drop(health);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_every_service() {
    use tonic_reflection::pb::{v1, v1alpha};

    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    println!("reflection v1 lists: {listed:?}");
    for name in SERVICE_NAMES.into_iter().chain([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ]) {
        assert!(
            listed.iter().any(|l| l == name),
            "{name} missing from {listed:?}"
        );
    }

    // A client resolves a service's schema by symbol, as grpcurl does.
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "quarry.v1.Collections".into(),
            ),
        ),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        reply.message_response
    else {
        panic!("unexpected reflection reply {reply:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reflection reply {reply:?}");
    };
    for name in SERVICE_NAMES {
        assert!(
            list.service.iter().any(|s| s.name == name),
            "{name} missing from v1alpha"
        );
    }
    drop((client, alpha));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_is_served_and_judges_requests_by_content() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let channel = server.channel().await;

    let mut documents = proto::documents_client::DocumentsClient::new(channel.clone());
    let status = documents
        .bulk_ingest(tokio_stream::iter(Vec::<proto::BulkIngestRequest>::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("collection"),
        "{}",
        status.message()
    );

    // Served now: an empty Ask is refused for its content, not its method.
    let mut rag = proto::rag_client::RagClient::new(channel.clone());
    let status = rag.ask(proto::AskRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut history = proto::history_client::HistoryClient::new(channel);
    let page = history
        .list_records(proto::ListRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(page.records.is_empty());
    drop((documents, rag, history));
    assert!(server.stop().success());
}
