//! The in-process `simulated` backend: a deterministic stand-in for a model that speaks the
//! MassGen protocol. It writes plausible text about the question, calls `new_answer` for its
//! first `answer_rounds` turns and `vote` after that, reports usage, honours its latency with
//! `tokio::time::sleep` (so paused-time tests are exact) and injects the configured failures.
//!
//! Everything it decides is seeded by `seed`, the agent id and the call number, so the same team
//! gives the same run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

mod server;
mod text;

pub use self::server::SimServer;

use self::text::compose_answer;
use super::{
    ChatRequest, ChatResponse, Provider, ProviderError, ProviderErrorKind, Role, StreamEvent,
    StreamSink, ToolCall, Usage,
};
use crate::config::SimulatedSettings;
use crate::keys::ApiKey;
use crate::quota::{RateLimitSignal, SignalKind};

/// Marks the start of the answers block in a coordination prompt (MassGen's wording).
pub const ANSWERS_OPEN: &str = "<CURRENT ANSWERS from the agents>";
/// Marks the end of the answers block.
pub const ANSWERS_CLOSE: &str = "<END OF CURRENT ANSWERS>";

/// A simulated model serving one agent. Counts its own calls, so use one instance per agent.
#[derive(Debug)]
pub struct SimulatedProvider {
    agent_id: String,
    settings: SimulatedSettings,
    /// The team's real ids, sorted: maps `vote_for` to its anonymous id (`agentN`).
    sorted_team: Vec<String>,
    calls: AtomicU32,
    answers_given: AtomicU32,
    /// Where `model_rpm` is counted: the provider's own, or one shared by a whole team.
    server: std::sync::Arc<SimServer>,
}

impl SimulatedProvider {
    /// A simulated model for `agent_id` in a team whose real ids are `team_ids` (any order).
    pub fn new(
        agent_id: impl Into<String>,
        settings: SimulatedSettings,
        team_ids: &[String],
    ) -> Self {
        let mut sorted_team = team_ids.to_vec();
        sorted_team.sort();
        Self {
            agent_id: agent_id.into(),
            settings,
            sorted_team,
            calls: AtomicU32::new(0),
            answers_given: AtomicU32::new(0),
            server: std::sync::Arc::new(SimServer::new()),
        }
    }

    /// The same model counting `model_rpm` on `server` (shared by every simulated agent of a
    /// team, as a provider counts every caller of one account).
    pub fn with_server(mut self, server: std::sync::Arc<SimServer>) -> Self {
        self.server = server;
        self
    }

    /// How many calls this model has received.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn rng(&self, call: u32) -> fastrand::Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.settings.seed;
        for b in self.agent_id.bytes().chain(call.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        fastrand::Rng::with_seed(h)
    }

    fn injected_failure(&self, call: u32, rng: &mut fastrand::Rng) -> Option<&str> {
        let f = &self.settings.failure;
        let roll = rng.f64();
        let fails = f.always || f.on_calls.contains(&call) || (f.rate > 0.0 && roll < f.rate);
        fails.then_some(if f.kind.is_empty() { "error" } else { &f.kind })
    }

    fn respond(
        &self,
        request: &ChatRequest,
        call: u32,
    ) -> Result<ChatResponse, Box<ProviderError>> {
        let mut rng = self.rng(call);
        let question = original_message(request);
        let mut response = ChatResponse {
            finish_reason: Some("stop".to_owned()),
            ..ChatResponse::default()
        };
        if let Some(&rpm) = self.settings.model_rpm.get(&request.model) {
            if let Err(signal) = self.server.admit(&request.model, rpm) {
                return Err(Box::new(
                    ProviderError::new(
                        ProviderErrorKind::RateLimited,
                        signal.message.clone().unwrap_or_default(),
                    )
                    .with_status(429)
                    .with_signal(signal),
                ));
            }
        }
        match self.injected_failure(call, &mut rng) {
            Some("rate_limit") => {
                let mut signal = RateLimitSignal::new(SignalKind::RateLimited);
                signal.retry_after = self.settings.failure.retry_after;
                signal.message = Some("simulated 429: rate limit reached".to_owned());
                return Err(Box::new(
                    ProviderError::new(ProviderErrorKind::RateLimited, "simulated rate limit")
                        .with_status(429)
                        .with_signal(signal),
                ));
            }
            Some("no_tool_call") => {
                response.text = compose_answer(question, &mut rng, 0);
            }
            Some(_) => {
                return Err(Box::new(
                    ProviderError::new(
                        ProviderErrorKind::Transient,
                        format!("simulated failure on call {call}"),
                    )
                    .with_status(503),
                ));
            }
            None if request.tools.is_empty() => {
                response.text = format!("Final answer. {}", compose_answer(question, &mut rng, 0));
            }
            None => self.choose_tool(request, question, &mut rng, call, &mut response),
        }
        // Like a real API, never more output than the request's cap: a reply cut there ends
        // with `length`, and its text stops about where the cap falls (tool calls are kept
        // whole, so a team's protocol still reads them).
        let mut output = u64::from(self.settings.output_tokens);
        if let Some(cap) = request.max_tokens.map(u64::from)
            && output > cap
        {
            output = cap;
            response.finish_reason = Some("length".to_owned());
            cut_to_tokens(&mut response.text, cap);
        }
        response.usage = Some(Usage::new(approx_tokens(request), output));
        Ok(response)
    }

    fn choose_tool(
        &self,
        request: &ChatRequest,
        question: &str,
        rng: &mut fastrand::Rng,
        call: u32,
        response: &mut ChatResponse,
    ) {
        let labels = answer_labels(request);
        let given = self.answers_given.load(Ordering::Relaxed);
        let call_id = format!("sim-{}-{call}", self.agent_id);
        if given < self.settings.answer_rounds || labels.is_empty() {
            self.answers_given.fetch_add(1, Ordering::Relaxed);
            let content = compose_answer(question, rng, given + 1);
            response.tool_calls.push(tool_call(
                call_id,
                "new_answer",
                serde_json::json!({ "content": content }),
            ));
        } else {
            let wanted = self
                .settings
                .vote_for
                .as_ref()
                .and_then(|real| self.sorted_team.iter().position(|id| id == real))
                .map(|i| format!("agent{}", i + 1))
                .filter(|anon| labels.iter().any(|l| l == anon));
            let target = wanted.unwrap_or_else(|| labels[0].clone());
            let reason = format!("{target} answers the question most completely.");
            response.tool_calls.push(tool_call(
                call_id,
                "vote",
                serde_json::json!({ "agent_id": target, "reason": reason }),
            ));
        }
        response.finish_reason = Some("tool_calls".to_owned());
    }
}

impl Provider for SimulatedProvider {
    fn name(&self) -> &str {
        "simulated"
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        _key: Option<&'a ApiKey>,
        sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if self.settings.latency > Duration::ZERO {
                tokio::time::sleep(self.settings.latency).await;
            }
            let response = self.respond(request, call).map_err(|e| *e)?;
            if let (true, Some(sink)) = (request.stream, sink) {
                stream_out(&response, sink);
            }
            Ok(response)
        })
    }
}

fn stream_out(response: &ChatResponse, sink: &StreamSink) {
    let words: Vec<&str> = response.text.split_inclusive(' ').collect();
    for chunk in words.chunks(8) {
        // A full or closed sink drops events: streaming must never block the call.
        let _ = sink.try_send(StreamEvent::TextDelta(chunk.concat()));
    }
    for call in &response.tool_calls {
        let _ = sink.try_send(StreamEvent::ToolCall(call.clone()));
    }
    if let Some(usage) = response.usage {
        let _ = sink.try_send(StreamEvent::Usage(usage));
    }
}

fn tool_call(id: String, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall::new(id, name, arguments)
}

/// A cheap token count: about four tokens for every three words of every message (tool calls'
/// names and arguments and tool results included).
/// Cuts `text` after the words that make about `tokens` tokens (3 words per 4 tokens, the
/// inverse of [`approx_tokens`]), keeping at least one word.
fn cut_to_tokens(text: &mut String, tokens: u64) {
    let keep = usize::try_from((tokens * 3 / 4).max(1)).unwrap_or(usize::MAX);
    let mut words = 0;
    let mut in_word = false;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                if words == keep {
                    text.truncate(at);
                    return;
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
}

fn approx_tokens(request: &ChatRequest) -> u64 {
    let words: usize = request
        .messages
        .iter()
        .map(|m| m.all_text().split_whitespace().count())
        .sum();
    (words as u64 * 4).div_ceil(3)
}

/// The question between MassGen's `<ORIGINAL MESSAGE>` markers, or the first user message.
fn original_message(request: &ChatRequest) -> &str {
    let first_user = request
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .map_or("", |m| m.content.as_str());
    match first_user.split_once("<ORIGINAL MESSAGE>") {
        Some((_, rest)) => rest
            .split_once("<END OF ORIGINAL MESSAGE>")
            .map_or(rest, |(q, _)| q)
            .trim(),
        None => first_user.trim(),
    }
}

/// The anonymous agent ids (`agent2` for a label `<agent2.1>`) in the latest answers block of a
/// user message, in the order they appear, the way a model reading the prompt would find them
/// (its own tool calls and their results are not answers blocks).
fn answer_labels(request: &ChatRequest) -> Vec<String> {
    let Some(block) = request.messages.iter().rev().find_map(|m| {
        if m.role != Role::User {
            return None;
        }
        let start = m.content.rfind(ANSWERS_OPEN)?;
        let rest = &m.content[start + ANSWERS_OPEN.len()..];
        Some(rest.split_once(ANSWERS_CLOSE).map_or(rest, |(b, _)| b))
    }) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for piece in block.split('<').skip(1) {
        let Some((tag, _)) = piece.split_once('>') else {
            continue;
        };
        let Some(num) = tag.strip_prefix("agent") else {
            continue;
        };
        let id = num.split_once('.').map_or(num, |(n, _)| n);
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            let anon = format!("agent{id}");
            if !ids.contains(&anon) {
                ids.push(anon);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::provider::{Message, ToolSpec};

    fn request(user: &str, tools: bool) -> ChatRequest {
        let tools = if tools {
            vec![ToolSpec {
                name: "new_answer".into(),
                description: String::new(),
                parameters: serde_json::json!({}),
            }]
        } else {
            Vec::new()
        };
        ChatRequest {
            model: "sim".into(),
            messages: vec![Message::system("be helpful"), Message::user(user)],
            tools,
            temperature: None,
            max_tokens: None,
            stream: false,
            options: Default::default(),
        }
    }

    fn prompt(answers: &str) -> String {
        format!(
            "<ORIGINAL MESSAGE> Why is the sky blue? <END OF ORIGINAL MESSAGE>\n{ANSWERS_OPEN}\n{answers}\n{ANSWERS_CLOSE}"
        )
    }

    #[tokio::test]
    async fn output_never_passes_the_requests_cap() {
        let team = vec!["a".to_owned()];
        let p = SimulatedProvider::new("a", SimulatedSettings::default(), &team);
        let full = u64::from(SimulatedSettings::default().output_tokens);
        let mut req = request("Why?", false);
        let r = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r.usage.unwrap().output_tokens, full);
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        req.max_tokens = Some(7);
        let r = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r.usage.unwrap().output_tokens, 7);
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        // The text stops where the cap falls: 5 words for 7 tokens.
        assert_eq!(r.text.split_whitespace().count(), 5, "{}", r.text);
        assert!(r.text.starts_with("Final answer."), "{}", r.text);
        assert!(!r.text.ends_with(char::is_whitespace), "{:?}", r.text);
    }

    #[test]
    fn cutting_keeps_whole_words_and_at_least_one() {
        let cut = |text: &str, tokens: u64| {
            let mut t = text.to_owned();
            cut_to_tokens(&mut t, tokens);
            t
        };
        assert_eq!(cut("one two  three four", 4), "one two  three");
        assert_eq!(cut("one two", 1), "one");
        assert_eq!(cut("one two", 0), "one");
        assert_eq!(cut("one two", 100), "one two");
        assert_eq!(cut("", 5), "");
        assert_eq!(cut("  héllo wörld ", 2), "  héllo");
    }

    #[tokio::test]
    async fn answers_first_then_votes_for_first_listed() {
        let team = vec!["b".to_owned(), "a".to_owned()];
        let p = SimulatedProvider::new("a", SimulatedSettings::default(), &team);
        let req = request(&prompt("(no answers available yet)"), true);
        let r1 = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r1.tool_calls[0].name, "new_answer");
        let text = r1.tool_calls[0].arguments["content"].as_str().unwrap();
        assert!(text.to_lowercase().contains("sky"), "{text}");
        let req = request(
            &prompt("<agent2.1> x <end of agent2.1>\n<agent1.1> y"),
            true,
        );
        let r2 = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r2.tool_calls[0].name, "vote");
        assert_eq!(r2.tool_calls[0].arguments["agent_id"], "agent2");
        assert!(r2.usage.unwrap().input_tokens > 0);
    }

    #[tokio::test]
    async fn vote_for_maps_real_id_to_anonymous_id() {
        let team = vec!["zed".to_owned(), "amy".to_owned()];
        let settings = SimulatedSettings {
            answer_rounds: 0,
            vote_for: Some("zed".into()),
            ..SimulatedSettings::default()
        };
        let p = SimulatedProvider::new("amy", settings, &team);
        let req = request(&prompt("<agent1.1> x <end of agent1.1> <agent2.1> y"), true);
        let r = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent2");
    }

    #[tokio::test]
    async fn deterministic_for_same_seed_and_varies_by_agent() {
        let team = vec!["a".to_owned(), "b".to_owned()];
        let req = request(&prompt("(no answers available yet)"), true);
        let a1 = SimulatedProvider::new("a", SimulatedSettings::default(), &team);
        let a2 = SimulatedProvider::new("a", SimulatedSettings::default(), &team);
        let b = SimulatedProvider::new("b", SimulatedSettings::default(), &team);
        let x = a1.chat(&req, None, None).await.unwrap();
        let y = a2.chat(&req, None, None).await.unwrap();
        let z = b.chat(&req, None, None).await.unwrap();
        assert_eq!(x, y);
        assert_ne!(x.tool_calls[0].arguments, z.tool_calls[0].arguments);
    }

    #[tokio::test]
    async fn injected_failures_by_kind() {
        let team = vec!["a".to_owned()];
        let mut settings = SimulatedSettings::default();
        settings.failure.on_calls = vec![1, 2];
        settings.failure.kind = "rate_limit".into();
        settings.failure.retry_after = Some(Duration::from_secs(7));
        let p = SimulatedProvider::new("a", settings, &team);
        let req = request(&prompt("(no answers available yet)"), true);
        let e = p.chat(&req, None, None).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(p.chat(&req, None, None).await.is_err());
        assert!(p.chat(&req, None, None).await.is_ok());

        let mut settings = SimulatedSettings::default();
        settings.failure.always = true;
        settings.failure.kind = "no_tool_call".into();
        let p = SimulatedProvider::new("a", settings, &team);
        let r = p.chat(&req, None, None).await.unwrap();
        assert!(r.tool_calls.is_empty() && !r.text.is_empty());
    }

    #[tokio::test]
    async fn reads_a_retry_in_native_form() {
        // A retry: the first user message lists the answers, then the refused call and its
        // result. The model votes from the answers block and counts the replayed call's words.
        let team = vec!["a".to_owned(), "b".to_owned()];
        let settings = SimulatedSettings {
            answer_rounds: 0,
            ..SimulatedSettings::default()
        };
        let p = SimulatedProvider::new("a", settings, &team);
        let refused = ToolCall::new(
            "c1",
            "new_answer",
            serde_json::json!({"content": "one two three four five six seven eight nine"}),
        );
        let mut req = request(&prompt("<agent2.1> y <end of agent2.1>"), true);
        let plain = approx_tokens(&req);
        req.messages
            .push(Message::assistant_tool_calls("", vec![refused.clone()]));
        req.messages
            .push(Message::tool_error(&refused, "identical"));
        assert!(
            approx_tokens(&req) >= plain + 10,
            "{} vs {plain}",
            approx_tokens(&req)
        );
        let r = p.chat(&req, None, None).await.unwrap();
        assert_eq!(r.tool_calls[0].name, "vote");
        assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent2");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_honoured_and_streaming_reaches_the_sink() {
        let team = vec!["a".to_owned()];
        let settings = SimulatedSettings {
            latency: Duration::from_millis(250),
            ..SimulatedSettings::default()
        };
        let p = SimulatedProvider::new("a", settings, &team);
        let mut req = request(
            "<ORIGINAL MESSAGE> hi there friend <END OF ORIGINAL MESSAGE>",
            false,
        );
        req.stream = true;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let start = tokio::time::Instant::now();
        let r = p.chat(&req, None, Some(&tx)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        assert!(r.text.starts_with("Final answer."));
        let mut streamed = String::new();
        while let Ok(ev) = rx.try_recv() {
            if let StreamEvent::TextDelta(t) = ev {
                streamed.push_str(&t);
            }
        }
        assert_eq!(streamed, r.text);
    }
}
