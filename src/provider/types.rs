//! The provider interface: requests, responses, streaming events and errors.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::image::ImageInput;
use crate::keys::ApiKey;
use crate::quota::RateLimitSignal;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The user (and the orchestrator speaking for it).
    User,
    /// The model's own earlier turns (text, tool calls or both).
    Assistant,
    /// The result of one of the model's tool calls ([`Message::tool_result`] says which call).
    Tool,
}

/// Which tool call a [`Role::Tool`] message answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolResult {
    /// The id of the call answered ([`ToolCall::id`]).
    pub call_id: String,
    /// The name of the tool called.
    pub name: String,
    /// Whether the call failed or was refused (the content says why).
    #[serde(default)]
    pub is_error: bool,
}

/// One chat message: text (and images, for the user), and for the model's turns the tool calls
/// it made, or for a tool result the call it answers. Build messages with the constructors; each adapter sends every
/// form in its provider's native shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text (for a tool result, the result itself; may be empty on an assistant message
    /// that only called tools).
    pub content: String,
    /// The tool calls an assistant message made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResult>,
    /// The images it carries, in order (user messages; see [`Message::user_with_images`]). A
    /// request carrying any needs a vision-capable model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageInput>,
}

impl Message {
    fn text(role: Role, content: String) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_result: None,
            images: Vec::new(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content.into())
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content.into())
    }
    /// A user message with `images` (its text may be empty).
    pub fn user_with_images(content: impl Into<String>, images: Vec<ImageInput>) -> Self {
        Self {
            images,
            ..Self::text(Role::User, content.into())
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(Role::Assistant, content.into())
    }
    /// An assistant message that made `tool_calls` (with `content` as its text, possibly empty).
    pub fn assistant_tool_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::text(Role::Assistant, content.into())
        }
    }
    /// The successful result `content` of `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self::result_of(call, content.into(), false)
    }
    /// `call` failed or was refused; `content` says why.
    pub fn tool_error(call: &ToolCall, content: impl Into<String>) -> Self {
        Self::result_of(call, content.into(), true)
    }

    fn result_of(call: &ToolCall, content: String, is_error: bool) -> Self {
        Self {
            tool_result: Some(ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                is_error,
            }),
            ..Self::text(Role::Tool, content)
        }
    }

    /// Every piece of text the message sends: its content, and each tool call's name and
    /// arguments (for reading a prompt the way a model would; token estimates serialize the
    /// whole message instead).
    pub fn all_text(&self) -> std::borrow::Cow<'_, str> {
        if self.tool_calls.is_empty() {
            return std::borrow::Cow::Borrowed(&self.content);
        }
        let mut s = self.content.clone();
        for call in &self.tool_calls {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&call.name);
            s.push(' ');
            s.push_str(&call.arguments_text());
        }
        std::borrow::Cow::Owned(s)
    }
}

/// A tool the model may call, described by a JSON schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolSpec {
    /// The tool's name, e.g. `new_answer`.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// One call of a tool by the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (generated when the provider gives none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments object (a JSON object; `Value::Null` when the model sent unparseable JSON,
    /// with the raw text kept in `raw_arguments`).
    pub arguments: serde_json::Value,
    /// The arguments exactly as the model sent them.
    pub raw_arguments: String,
    /// An opaque token the provider asks to have sent back with this call when the
    /// conversation continues (Gemini's `thoughtSignature`); `None` for most providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// How many tool-call ids this process has generated (see [`ToolCall::generated_id`]).
static GENERATED_CALL_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl ToolCall {
    /// An id for a tool call the provider sent without one: `call_mg_<n>`, unique in the
    /// process, so the calls of a retried turn never share an id with earlier ones in the same
    /// conversation (each result is matched to its call by id).
    pub fn generated_id() -> String {
        let n = GENERATED_CALL_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("call_mg_{n}")
    }

    /// A call of `name` with id `id` and the arguments object `arguments`.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: serde_json::Value,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            raw_arguments: arguments.to_string(),
            arguments,
            signature: None,
        }
    }

    /// The arguments as text, the way they go back to the provider: as the model sent them, or
    /// the parsed object when no raw text was kept (`{}` when neither exists).
    pub fn arguments_text(&self) -> String {
        if !self.raw_arguments.trim().is_empty() {
            self.raw_arguments.clone()
        } else {
            self.arguments_object().to_string()
        }
    }

    /// The arguments as a JSON object, the way providers that take structured arguments want
    /// them back (`{}` when the model sent something that was not an object).
    pub fn arguments_object(&self) -> serde_json::Value {
        if self.arguments.is_object() {
            self.arguments.clone()
        } else {
            serde_json::json!({})
        }
    }
}

/// Token usage the provider reported for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// The provider's report left out the prompt tokens: `input_tokens` is 0 and says nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub input_unreported: bool,
    /// The provider's report left out the completion tokens: `output_tokens` is 0 and says
    /// nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_unreported: bool,
}

impl Usage {
    /// A report of both parts.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            input_unreported: false,
            output_unreported: false,
        }
    }

    /// A report that may leave out either part (`None`: not reported).
    pub fn partial(input_tokens: Option<u64>, output_tokens: Option<u64>) -> Self {
        Usage {
            input_tokens: input_tokens.unwrap_or(0),
            output_tokens: output_tokens.unwrap_or(0),
            input_unreported: input_tokens.is_none(),
            output_unreported: output_tokens.is_none(),
        }
    }

    /// This usage with each part the provider left out taken from `input` and `output` (what
    /// was reserved for it): a part nobody reported is never taken for 0.
    pub fn or_reserved(self, input: u64, output: u64) -> Self {
        Usage::new(
            if self.input_unreported {
                input
            } else {
                self.input_tokens
            },
            if self.output_unreported {
                output
            } else {
                self.output_tokens
            },
        )
    }

    /// Input plus output (saturating: an absurd report cannot overflow).
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Provider options passed through from the team file (`backend.top_p`, `reasoning`, `text`,
/// `parallel_tool_calls`, `betas`, ...). Each adapter writes the ones its API takes, in the
/// API's own shape, and leaves out the rest (`docs/configuration.md` lists which go where).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestOptions {
    /// Nucleus sampling (`top_p`; Gemini `generationConfig.topP`).
    pub top_p: Option<f32>,
    /// Top-k sampling (`top_k`; Gemini `generationConfig.topK`). Not sent to OpenAI itself.
    pub top_k: Option<u32>,
    /// Reasoning effort (`low`, `medium`, `high`, ...): chat completions `reasoning_effort`.
    pub reasoning_effort: Option<String>,
    /// Answer verbosity (`low`, `medium`, `high`): chat completions `verbosity`.
    pub verbosity: Option<String>,
    /// Whether the model may call several tools in one turn (OpenAI `parallel_tool_calls`;
    /// Anthropic `tool_choice.disable_parallel_tool_use` = the opposite).
    pub parallel_tool_calls: Option<bool>,
    /// Anthropic beta features, sent in the `anthropic-beta` header.
    pub betas: Vec<String>,
    /// Chat template arguments of vLLM / SGLang servers (`chat_template_kwargs`).
    pub chat_template_kwargs: Option<serde_json::Value>,
    /// Extra top-level fields merged into an OpenAI-compatible request body (`extra_body`);
    /// fields the request already sets are not overwritten.
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A chat request with tools.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model name as the provider knows it.
    pub model: String,
    /// The conversation, system message first.
    pub messages: Vec<Message>,
    /// Tools offered to the model.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Cap on output tokens.
    pub max_tokens: Option<u32>,
    /// Ask the provider to stream (events go to the [`StreamSink`] given with the call).
    pub stream: bool,
    /// Provider options from the team file, passed through as each API takes them.
    pub options: RequestOptions,
}

/// A whole answer: text, tool calls and usage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatResponse {
    /// Text the model wrote (may be empty when it only called tools).
    pub text: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`...), as the provider said it.
    pub finish_reason: Option<String>,
    /// Rate-limit information that came with a successful answer (headers), if any.
    pub observed: Option<RateLimitSignal>,
}

/// Incremental output while a streamed answer arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More answer text.
    TextDelta(String),
    /// A tool call finished assembling.
    ToolCall(ToolCall),
    /// Usage arrived.
    Usage(Usage),
    /// The attempt failed (the reason) and the call is made again: what it streamed so far is
    /// void, and the next attempt's events follow. Sent by [`crate::routing::call`] before the
    /// retry, in order with the failed attempt's events.
    Retrying(String),
}

/// Where a provider sends [`StreamEvent`]s during a streamed call. Sending never blocks the call:
/// events are dropped when the receiver is full or gone.
pub type StreamSink = mpsc::Sender<StreamEvent>;

/// How a provider call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// A rate limit or quota (429, RESOURCE_EXHAUSTED); the signal says which and for how long.
    RateLimited,
    /// The key was refused (401/403): retire the key.
    Auth,
    /// A transient failure worth retrying with backoff (500, 502, 503, 504, reset, timeout).
    Transient,
    /// The provider is overloaded (529): retry with backoff, not a quota event.
    Overloaded,
    /// The request is too large for a limit (413): never retry as is.
    RequestTooLarge,
    /// A spend cap or billing limit: terminal.
    SpendCap,
    /// The request was refused as invalid (400, 404, 422): not retryable.
    BadRequest,
    /// The provider answered something that could not be parsed.
    Malformed,
    /// The call was cancelled by the caller.
    Cancelled,
    /// The call failed inside this process, not at the provider: the adapter panicked (its
    /// provider actor answered the error and was restarted). Not retryable: the same request
    /// would likely fail the same way.
    Internal,
    /// The call was dropped inside this process before it got an answer: its provider actor
    /// was restarted after a panic in *another* call, or the runtime is shutting down.
    /// Retryable at once; neither the key's nor the provider's doing.
    Dropped,
    /// The endpoint's circuit breaker is open (it failed repeatedly: transport errors, 5xx,
    /// timeouts): the call was refused at once and never sent. Retryable, on another endpoint
    /// or after the cooldown; not held against the key.
    CircuitOpen,
}

impl ProviderErrorKind {
    /// The kind as a label (`rate_limited`, `transient`, `circuit_open`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Auth => "auth",
            ProviderErrorKind::Transient => "transient",
            ProviderErrorKind::Overloaded => "overloaded",
            ProviderErrorKind::RequestTooLarge => "request_too_large",
            ProviderErrorKind::SpendCap => "spend_cap",
            ProviderErrorKind::BadRequest => "bad_request",
            ProviderErrorKind::Malformed => "malformed",
            ProviderErrorKind::Cancelled => "cancelled",
            ProviderErrorKind::Internal => "internal",
            ProviderErrorKind::Dropped => "dropped",
            ProviderErrorKind::CircuitOpen => "circuit_open",
        }
    }
}

/// A failed provider call.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// A human message (never contains a key).
    pub message: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// Rate-limit information parsed from the answer, if any.
    pub signal: Option<RateLimitSignal>,
    /// The request provably never reached the provider (the connection could not be opened:
    /// refused, DNS failure, connect timeout), so the provider counted nothing.
    pub not_sent: bool,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{:?} (HTTP {s}): {}", self.kind, self.message),
            None => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}

impl ProviderError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            signal: None,
            not_sent: false,
        }
    }

    /// The same error, marked as a request that never reached the provider.
    pub fn never_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }

    /// The same error with an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error with a parsed rate-limit signal.
    pub fn with_signal(mut self, signal: RateLimitSignal) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Whether trying again (after a wait, possibly on another key) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::RateLimited
                | ProviderErrorKind::Transient
                | ProviderErrorKind::Overloaded
                | ProviderErrorKind::Malformed
                | ProviderErrorKind::Dropped
                | ProviderErrorKind::CircuitOpen
        )
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.signal.as_ref().and_then(|s| s.retry_after)
    }
}

/// A provider endpoint. Implementations are cheap to share (`Arc<dyn Provider>`) and safe to call
/// from many tasks at once. Dropping the returned future cancels the call (and its HTTP request).
pub trait Provider: Send + Sync + fmt::Debug {
    /// The backend family, e.g. `simulated`, `openai`, `gemini`, `claude` (a bounded label).
    fn name(&self) -> &str;

    /// Runs one chat call with `key` (when the backend needs one). When `request.stream` is set
    /// and `sink` is given, incremental events are sent to it while the call runs; the whole
    /// response is returned either way.
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        key: Option<&'a ApiKey>,
        sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>>;
}
