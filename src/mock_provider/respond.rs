//! Turning a rendered answer into the HTTP response the mock sends: faults that cut or break the
//! body, each dialect's invalid-request error, and the mock's own plain errors.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};

use super::convo::MockDialect;
use super::faults::Fault;
use super::refuse::error_status;
use super::render::Rendered;

/// A plain-text answer (the mock's own errors).
pub(super) fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

/// A request the dialect's API would refuse as invalid, in its error shape.
pub(super) fn error_message(dialect: MockDialect, status: u16, message: &str) -> Rendered {
    let mut r = error_status(dialect, status);
    if let Some(body) = r
        .pieces
        .first()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
    {
        let mut body = body;
        body["error"]["message"] = message.into();
        r.pieces = vec![body.to_string()];
    }
    r
}

/// How long a truncated answer's first half stays in flight before the connection is cut.
const TRUNCATE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Builds the response; `Reset` sends no body byte, `Truncate` cuts half-way, `Malformed` breaks
/// the JSON (the whole body, or the middle stream event).
pub(super) fn respond(mut r: Rendered, fault: Option<Fault>) -> Response {
    let content_type = if r.sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let cut = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock: connection cut");
    let body = match fault {
        Some(Fault::Reset) => Body::from_stream(stream::iter([Err::<Bytes, _>(cut())])),
        Some(Fault::Truncate) => {
            let mut text = r.pieces.concat();
            let mut mid = if r.sse && r.pieces.len() > 1 {
                r.pieces[..r.pieces.len() / 2].concat().len()
            } else {
                text.len() / 2
            };
            while !text.is_char_boundary(mid) {
                mid -= 1;
            }
            text.truncate(mid);
            // The first half reaches the client before the cut, as when a real stream breaks:
            // the client has the start of the answer in hand.
            let first = stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(text))]);
            let then_cut = stream::once(async move {
                tokio::time::sleep(TRUNCATE_PAUSE).await;
                Err(cut())
            });
            Body::from_stream(first.chain(then_cut))
        }
        Some(Fault::Malformed) => {
            let i = r.pieces.len() / 2;
            if let Some(p) = r.pieces.get_mut(i) {
                *p = if r.sse {
                    "data: {\"choices\": [{\"delta\": \n\n".to_owned()
                } else {
                    "{\"id\": \"broken\", \"choices\": [{\"mess".to_owned()
                };
            }
            Body::from(r.pieces.concat())
        }
        _ => Body::from(r.pieces.concat()),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "mock: bad response"))
}
