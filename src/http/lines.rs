//! A request body read as JSON lines while it arrives: a reader task
//! splits it into lines and hands them over a small bounded channel, so
//! that a consumer slower than the client (the loader) stops the reading
//! and the client waits on TCP flow control, as a gRPC stream would.

use axum::body::{Body, Bytes};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// Lines waiting for the consumer.
const WAITING_LINES: usize = 4;

/// The body's non-blank lines with their line numbers (from 1); a line
/// longer than `limit` bytes ends the stream with RESOURCE_EXHAUSTED
/// naming the limit, a broken upload with CANCELLED.
pub fn json_lines(
    body: Body,
    limit: usize,
) -> ReceiverStream<Result<(usize, Bytes), tonic::Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(WAITING_LINES);
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut number = 0usize;
        loop {
            let chunk = match data.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(tonic::Status::cancelled(format!(
                            "the request body broke off: {e}"
                        ))))
                        .await;
                    return;
                }
                None => break,
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                number += 1;
                if !send_line(&tx, number, &line[..end], limit).await {
                    return;
                }
            }
            if pending.len() > limit {
                let _ = tx.send(Err(too_long(number + 1, limit))).await;
                return;
            }
        }
        if !pending.is_empty() {
            number += 1;
            send_line(&tx, number, &pending, limit).await;
        }
    });
    ReceiverStream::new(rx)
}

fn too_long(number: usize, limit: usize) -> tonic::Status {
    super::error::too_large(format!(
        "line {number} is larger than the limit of {limit} bytes (--max-message-bytes)"
    ))
}

/// Sends one line unless blank; false when the stream must end.
async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<(usize, Bytes), tonic::Status>>,
    number: usize,
    line: &[u8],
    limit: usize,
) -> bool {
    if line.len() > limit {
        let _ = tx.send(Err(too_long(number, limit))).await;
        return false;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    tx.send(Ok((number, Bytes::copy_from_slice(line))))
        .await
        .is_ok()
}
