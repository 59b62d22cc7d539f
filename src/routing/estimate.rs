//! Token estimates for quota reservations: the prompt counted with the tokenizer of the model's
//! family, plus the output cap sent with the request.
//!
//! - OpenAI-style models: `o200k_base` for the gpt-4o, gpt-4.1, gpt-5 and o1/o3/o4 families,
//!   (and gpt-4.5), `cl100k_base` for every other model (gpt-4, gpt-3.5 and the many OpenAI-compatible servers
//!   whose tokenizers we do not know: their counts sit close to cl100k's for English).
//! - Gemini and Anthropic publish no tokenizer, so their prompts get an upper-bound estimate:
//!   the larger of the cl100k count scaled by [`UPPER_BOUND_SCALE`] and one token per
//!   [`UPPER_BOUND_CHARS_PER_TOKEN`] characters (docs/quota.md explains the figures).
//!
//! Each tokenizer is built once per process and shared (building one takes a noticeable
//! fraction of a second).
//!
//! Counting is the costliest step of a rate-limited call (about 1 µs per token), and prompts
//! repeat a lot: the same system message every turn and the same answers in every agent's
//! prompt (one line each in the answers block). So a text is counted line by line, each line
//! through a process-wide cache per tokenizer, plus one token per newline. The tokenizer mostly
//! splits at newlines anyway, so in practice the sum is the exact count or a few percent above
//! it (runs of newlines count once per newline).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

use tiktoken_rs::CoreBPE;

use crate::provider::ChatRequest;
use crate::quota::TokenCount;

/// Output tokens sent and reserved when neither the agent (`max_tokens`) nor its limits entry
/// names a cap and the route has none either.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Per-message overhead (role and markers) the chat formats add, in tokens.
pub const PER_MESSAGE_OVERHEAD: u64 = 4;

/// Per-request overhead (the priming of the reply) the chat formats add, in tokens.
pub const PER_REQUEST_OVERHEAD: u64 = 3;

/// The upper-bound estimate scales a cl100k count by this many hundredths.
pub const UPPER_BOUND_SCALE: u64 = 135;

/// ... and never goes below one token per this many characters.
pub const UPPER_BOUND_CHARS_PER_TOKEN: u64 = 3;

/// Input tokens reserved per image a message carries. Providers count an image by its pixel
/// size, which a request does not state, so this is the most an image costs before the
/// providers scale it down: Anthropic documents about 1,600 tokens for the largest image it
/// keeps unscaled (width x height / 750, 1092 x 1092 px), above OpenAI's 765 for a 1024 x 1024
/// image at high detail (85 plus 170 per 512 px tile) and Gemini's 258 per 768 px tile for
/// images up to that size. Very large images sent to Gemini may count more (more tiles).
pub const IMAGE_TOKENS: u64 = 1_600;

/// How a prompt's tokens are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenCounter {
    /// `o200k_base`: gpt-4o, gpt-4.1, gpt-5, o1, o3, o4 models.
    O200k,
    /// `cl100k_base`: gpt-4, gpt-3.5 and every other OpenAI-compatible model.
    Cl100k,
    /// No public tokenizer (Gemini, Anthropic): a documented upper bound (see the module docs).
    UpperBound,
}

impl TokenCounter {
    /// The counter for `model` served by a provider named `provider` (the
    /// [`crate::provider::Provider::name`]: `gemini`, `claude`, `openai`, `groq`, ...).
    pub fn for_model(provider: &str, model: &str) -> TokenCounter {
        match provider {
            "gemini" | "claude" | "anthropic" => TokenCounter::UpperBound,
            _ if uses_o200k(model) => TokenCounter::O200k,
            _ => TokenCounter::Cl100k,
        }
    }

    fn index(self) -> usize {
        match self {
            TokenCounter::O200k => 0,
            TokenCounter::Cl100k => 1,
            TokenCounter::UpperBound => 2,
        }
    }

    /// Whether this counter's tokenizer is built (counting will not block to build it).
    pub fn is_ready(self) -> bool {
        match self {
            TokenCounter::O200k => O200K.get().is_some(),
            TokenCounter::Cl100k | TokenCounter::UpperBound => CL100K.get().is_some(),
        }
    }

    /// Builds this counter's tokenizer if it is not built yet: blocking work (see [`warm`]).
    pub fn build(self) {
        match self {
            TokenCounter::O200k => o200k(),
            TokenCounter::Cl100k | TokenCounter::UpperBound => cl100k(),
        };
    }

    /// Tokens in `text`, uncached.
    pub fn count(self, text: &str) -> u64 {
        match self {
            TokenCounter::O200k => bpe_count(o200k(), text),
            TokenCounter::Cl100k => bpe_count(cl100k(), text),
            TokenCounter::UpperBound => {
                let scaled = bpe_count(cl100k(), text)
                    .saturating_mul(UPPER_BOUND_SCALE)
                    .div_ceil(100);
                let chars = (text.chars().count() as u64).div_ceil(UPPER_BOUND_CHARS_PER_TOKEN);
                scaled.max(chars)
            }
        }
    }

    /// [`count`](Self::count) through this counter's process-wide cache, keyed by the text's
    /// hash and length.
    pub fn count_cached(self, text: &str) -> u64 {
        static CACHES: OnceLock<[Cache; 3]> = OnceLock::new();
        let caches = CACHES.get_or_init(Default::default);
        let Some(cache) = caches.get(self.index()) else {
            return self.count(text);
        };
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        let key = (h.finish(), text.len());
        if let Some(n) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return *n;
        }
        let n = self.count(text);
        let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if c.len() >= CACHE_CAPACITY {
            c.clear();
        }
        c.insert(key, n);
        n
    }

    /// Tokens in `text`, counted line by line through the cache (see the module docs).
    pub fn estimate_text(self, text: &str) -> u64 {
        text.split('\n')
            .map(|line| {
                if line.is_empty() {
                    0
                } else {
                    self.count_cached(line)
                }
            })
            .sum::<u64>()
            + text.bytes().filter(|b| *b == b'\n').count() as u64
    }
}

/// Whether `model` (possibly behind a router prefix such as `openai/`) belongs to a family
/// that uses `o200k_base`.
fn uses_o200k(model: &str) -> bool {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let name = name.strip_prefix("ft:").unwrap_or(&name);
    [
        "gpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "chatgpt-4o",
        "o1",
        "o3",
        "o4",
    ]
    .iter()
    .any(|family| {
        name.strip_prefix(family)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', ':', '.']))
    })
}

static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();

fn cl100k() -> Option<&'static CoreBPE> {
    CL100K
        .get_or_init(|| tiktoken_rs::cl100k_base().ok())
        .as_ref()
}

fn o200k() -> Option<&'static CoreBPE> {
    O200K
        .get_or_init(|| tiktoken_rs::o200k_base().ok())
        .as_ref()
}

/// Builds the tokenizers of `counters` that are not built yet on tokio's blocking pool. A
/// tokenizer is built once per process and takes tens of milliseconds to build (hundreds in a
/// debug build): built inside an async task, it would stall a runtime worker, and with it the
/// requests of other agents that already hold quota permits, so they would reach the provider
/// later than the supervisor granted them. A run warms its agents' counters before any of them
/// asks for a permit.
pub async fn warm(counters: impl IntoIterator<Item = TokenCounter>) {
    let cold: Vec<TokenCounter> = counters.into_iter().filter(|c| !c.is_ready()).collect();
    if cold.is_empty() {
        return;
    }
    // Should the blocking pool fail, the first count builds the tokenizer, as before.
    let _ =
        tokio::task::spawn_blocking(move || cold.into_iter().for_each(TokenCounter::build)).await;
}

/// Exact with the tokenizer; if it could not be built, an upper bound of one token per byte.
fn bpe_count(bpe: Option<&CoreBPE>, text: &str) -> u64 {
    match bpe {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => text.len() as u64,
    }
}

/// Tokens in `text`: exact for `cl100k_base`.
pub fn count_tokens(text: &str) -> u64 {
    TokenCounter::Cl100k.count(text)
}

/// Token counts by (hash, length) of the text.
type Cache = Mutex<HashMap<(u64, usize), u64>>;

/// Entries kept per tokenizer before its cache is emptied and starts over.
const CACHE_CAPACITY: usize = 4096;

/// [`count_tokens`] through the process-wide `cl100k_base` cache.
pub fn count_tokens_cached(text: &str) -> u64 {
    TokenCounter::Cl100k.count_cached(text)
}

/// Tokens in `text` with `cl100k_base`, counted line by line through the cache.
pub fn estimate_text(text: &str) -> u64 {
    TokenCounter::Cl100k.estimate_text(text)
}

/// The prompt tokens of `request` (messages, tool schemas and the chat format's overheads)
/// with `counter`.
///
/// A message is counted from its serialized form, so whatever a message carries besides its
/// text (tool calls and their arguments, tool results) is counted too: its `content` text line
/// by line through the cache, every other field as compact JSON.
pub fn estimate_input(request: &ChatRequest, counter: TokenCounter) -> u64 {
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| message_tokens(m, counter) + PER_MESSAGE_OVERHEAD)
        .sum();
    // A tool is counted as the compact JSON object that describes it on the wire.
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| {
            let function = serde_json::json!({
                "name": t.name, "description": t.description, "parameters": t.parameters});
            counter.count_cached(&function.to_string())
        })
        .sum();
    // Pass-through fields a server may fold into the prompt (a chat template's arguments) or
    // that carry text of their own: counted as their JSON, an upper bound of what they add.
    let o = &request.options;
    let options = o
        .chat_template_kwargs
        .as_ref()
        .map_or(0, |v| counter.count_cached(&v.to_string()))
        + o.extra_body.as_ref().map_or(0, |m| {
            counter.count_cached(&serde_json::to_string(m).unwrap_or_default())
        });
    PER_REQUEST_OVERHEAD + messages + tools + options
}

fn message_tokens(m: &crate::provider::Message, counter: TokenCounter) -> u64 {
    // Every field is named here, so a field added to `Message` must be counted to compile.
    let crate::provider::Message {
        role: _,
        content,
        tool_calls,
        tool_result,
        images,
    } = m;
    // The text line by line through the cache (prompts repeat answers line by line); tool calls
    // and results as the JSON they travel as.
    let calls = if tool_calls.is_empty() {
        0
    } else {
        json_tokens(tool_calls, counter)
    };
    let result = tool_result.as_ref().map_or(0, |r| json_tokens(r, counter));
    // An image as a fixed figure, never its data or URL as text.
    let images = u64::try_from(images.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(IMAGE_TOKENS);
    (counter.estimate_text(content) + calls + result).saturating_add(images)
}

/// Tokens of `value` as compact JSON (its debug form if it does not serialize: every field).
fn json_tokens<T: serde::Serialize + std::fmt::Debug>(value: &T, counter: TokenCounter) -> u64 {
    match serde_json::to_string(value) {
        Ok(s) => counter.count_cached(&s),
        Err(_) => counter.estimate_text(&format!("{value:?}")),
    }
}

/// What `request` reserves with `counter`: its prompt as input and its output cap
/// (`max_tokens`, else [`DEFAULT_MAX_TOKENS`]) as output. Callers that send the request fill
/// `max_tokens` first (see [`crate::routing`]), so the cap reserved is the cap sent.
pub fn estimate_tokens(request: &ChatRequest, counter: TokenCounter) -> TokenCount {
    TokenCount::new(
        estimate_input(request, counter),
        u64::from(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    )
}

/// The tokens a call may use with `cl100k_base`: the prompt (messages and tool schemas) plus
/// the output cap.
pub fn estimate_request(request: &ChatRequest) -> u64 {
    estimate_tokens(request, TokenCounter::Cl100k).total()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::provider::Message;

    fn request(text: &str, max_tokens: Option<u32>) -> ChatRequest {
        ChatRequest {
            options: Default::default(),
            model: "m".into(),
            messages: vec![Message::user(text)],
            tools: Vec::new(),
            temperature: None,
            max_tokens,
            stream: false,
        }
    }

    #[test]
    fn pass_through_fields_that_can_carry_text_are_counted() {
        let plain = request("hello world", Some(10));
        let mut with = plain.clone();
        with.options.chat_template_kwargs = Some(serde_json::json!({"enable_thinking": true}));
        let mut extra = serde_json::Map::new();
        extra.insert("guided_choice".into(), serde_json::json!(["yes", "no"]));
        with.options.extra_body = Some(extra);
        let base = estimate_input(&plain, TokenCounter::Cl100k);
        let more = estimate_input(&with, TokenCounter::Cl100k);
        assert!(more >= base + 10, "{base} -> {more}");
    }

    #[test]
    fn counts_with_the_real_tokenizer_and_adds_the_output_cap() {
        assert_eq!(count_tokens("hello world"), 2);
        let r = request("hello world", Some(100));
        let prompt = PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + 2;
        assert_eq!(estimate_request(&r), prompt + 100);
        assert_eq!(
            estimate_tokens(&r, TokenCounter::Cl100k),
            TokenCount::new(prompt, 100)
        );
        let unset = request("hello world", None);
        assert_eq!(
            estimate_request(&unset),
            prompt + u64::from(DEFAULT_MAX_TOKENS)
        );
        assert_eq!(count_tokens_cached("hello world"), 2);
        assert_eq!(count_tokens_cached("hello world, again"), 4);
        assert_eq!(count_tokens_cached("hello world"), 2);
    }

    #[test]
    fn picks_the_tokenizer_of_the_model_family() {
        use TokenCounter::*;
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "gpt-5-mini",
            "o1",
            "o3-mini",
            "o4-mini",
            "openai/gpt-4o",
            "ft:gpt-4o-mini:org::abc",
        ] {
            assert_eq!(TokenCounter::for_model("openai", m), O200k, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-3.5-turbo",
            "llama-3.1-8b-instant",
            "o1x",
            "gpt-40",
        ] {
            assert_eq!(TokenCounter::for_model("openai", m), Cl100k, "{m}");
        }
        assert_eq!(TokenCounter::for_model("gemini", "gpt-4o"), UpperBound);
        assert_eq!(
            TokenCounter::for_model("claude", "claude-3-5-haiku"),
            UpperBound
        );
    }

    #[test]
    fn the_two_openai_tokenizers_differ_where_they_should() {
        // o200k merges more of non-English text than cl100k does.
        let text = "Привет, как дела? Это проверка токенизатора для русского текста.";
        let (o, c) = (
            TokenCounter::O200k.count(text),
            TokenCounter::Cl100k.count(text),
        );
        assert!(o < c, "o200k {o} vs cl100k {c}");
        assert_eq!(
            TokenCounter::O200k.count(text),
            o200k().unwrap().encode_ordinary(text).len() as u64
        );
    }

    #[test]
    fn the_upper_bound_is_above_both_of_its_parts() {
        let english = "The quick brown fox jumps over the lazy dog near the river bank.";
        let code = "fn main() { let x: Vec<u64> = (0..10).map(|i| i * i).collect(); }";
        for text in [english, code] {
            let c = TokenCounter::Cl100k.count(text);
            let ub = TokenCounter::UpperBound.count(text);
            assert!(ub * 100 >= c * UPPER_BOUND_SCALE, "{ub} vs {c}");
            assert!(ub * UPPER_BOUND_CHARS_PER_TOKEN >= text.chars().count() as u64);
            assert!(ub > c);
        }
        // English: the character bound decides (about 4 characters per cl100k token).
        let c = TokenCounter::Cl100k.count(english);
        assert_eq!(
            TokenCounter::UpperBound.count(english),
            (english.chars().count() as u64)
                .div_ceil(3)
                .max((c * 135).div_ceil(100))
        );
    }

    #[test]
    fn caches_are_per_tokenizer() {
        let text = "Привет, мир: une phrase multilingue pour le cache.";
        let a = TokenCounter::O200k.count_cached(text);
        let b = TokenCounter::Cl100k.count_cached(text);
        let c = TokenCounter::UpperBound.count_cached(text);
        assert_eq!(a, TokenCounter::O200k.count(text));
        assert_eq!(b, TokenCounter::Cl100k.count(text));
        assert_eq!(c, TokenCounter::UpperBound.count(text));
        assert_ne!(a, b);
    }

    #[test]
    fn every_field_of_a_message_is_counted() {
        let mut r = request("hello world", Some(10));
        let plain = estimate_input(&r, TokenCounter::Cl100k);
        r.messages.push(Message::assistant(""));
        assert_eq!(
            estimate_input(&r, TokenCounter::Cl100k),
            plain + PER_MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn line_by_line_estimate_is_never_below_and_close_to_exact() {
        let text = "<ORIGINAL MESSAGE> Why is the sky blue? <END OF ORIGINAL MESSAGE>\n\n\
                    <CURRENT ANSWERS from the agents>\n\
                    <agent1.1> Rayleigh scattering favours short wavelengths. <end of agent1.1>\n\
                    <agent2.1> Blue light scatters more; violet is absorbed. <end of agent2.1>\n\
                    <END OF CURRENT ANSWERS>";
        for counter in [TokenCounter::Cl100k, TokenCounter::O200k] {
            let exact = counter.count(text);
            let estimate = counter.estimate_text(text);
            assert!(
                estimate >= exact && estimate <= exact + exact / 10,
                "{counter:?}: {estimate} vs {exact}"
            );
        }
    }

    #[tokio::test]
    async fn warming_builds_the_tokenizers_a_run_will_count_with() {
        warm([TokenCounter::O200k, TokenCounter::UpperBound]).await;
        for counter in [
            TokenCounter::O200k,
            TokenCounter::Cl100k,
            TokenCounter::UpperBound,
        ] {
            assert!(counter.is_ready(), "{counter:?}");
        }
        // Warming what is ready is free: nothing goes to the blocking pool.
        warm([TokenCounter::O200k]).await;
    }
}
