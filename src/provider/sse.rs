//! Server-sent events: splitting a byte stream into `event:` / `data:` records, and driving an
//! adapter's assembler over a streamed HTTP answer.

use futures_util::StreamExt;

use super::http::transport_error;
use super::{ProviderError, ProviderErrorKind};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser: feed it chunks as they arrive, get whole events back. Handles `\n`
/// and `\r\n` line ends, comments (`:`), and events split across chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; returns every event completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
        }
        out
    }

    /// Whether bytes of an unfinished event are still buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || !self.data.is_empty()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent {
                event: self.event.take(),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Reads a streamed answer event by event, handing each to `on_event`, which returns `Ok(true)`
/// once it has seen the dialect's end marker. A stream that ends (or breaks) before the end
/// marker is a `Transient` error: the answer is incomplete and must not be used.
pub async fn drive<F>(response: reqwest::Response, mut on_event: F) -> Result<(), ProviderError>
where
    F: FnMut(SseEvent) -> Result<bool, ProviderError>,
{
    let mut parser = SseParser::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            let mut err = transport_error(&e);
            err.message = format!("the stream was cut mid-way: {}", err.message);
            err
        })?;
        for event in parser.push(&chunk) {
            if on_event(event)? {
                return Ok(());
            }
        }
    }
    // A last event without its blank line still counts.
    for event in parser.push(b"\n\n") {
        if on_event(event)? {
            return Ok(());
        }
    }
    Err(ProviderError::new(
        ProviderErrorKind::Transient,
        "the stream ended before the answer was complete",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_crlf() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: message_start\r\ndata: {\"a\"").is_empty());
        assert!(p.has_partial());
        let got = p.push(b":1}\r\n\r\n: ping comment\n\ndata: x\ndata: y\n\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "x\ny".into()
                }
            ]
        );
        assert!(!p.has_partial());
    }
}
