//! How the mock counts tokens, per dialect, the way each provider documents it.
//!
//! - **OpenAI-compatible**: the model family's tokenizer: `o200k_base` for `gpt-4o*`,
//!   `chatgpt-4o*`, `gpt-4.1*`, `gpt-4.5*`, `gpt-5*` and the `o1`/`o3`/`o4` series (a fine-tuned
//!   `ft:` model as its base); `cl100k_base` for
//!   everything else (gpt-4, gpt-3.5 and unknown models). Input = for every message
//!   [`OPENAI_PER_MESSAGE`] tokens plus the tokens of its text (content, each tool call's name and
//!   argument string, each tool result's content), plus for every tool offered the tokens of its
//!   name, its description and its parameters as compact JSON. Output = the tokens of the reply's
//!   text, plus each tool call's name and argument string.
//! - **Gemini and Anthropic**: neither tokenizer is public, so the mock uses one documented
//!   count for both: a quarter of the characters, rounded up ([`quarter_tokens`]), over the same
//!   pieces (system text, every part's text, function calls and responses / tool uses and
//!   results as JSON, and each declared tool's name, description and parameters JSON), each
//!   piece rounded up on its own (so the sum is at most the whole text's quarter plus one per
//!   piece).
//!
//! Each image counts a fixed figure per dialect, [`super::images::image_tokens`].
//!
//! The output cap a request is charged for and cut at: the one it sent (`max_tokens` or
//! `max_completion_tokens`; `generationConfig.maxOutputTokens`; Anthropic's required
//! `max_tokens`), else the model's largest output ([`model_max_output`]).

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::convo::{MockDialect, MockRequest, Part};

/// Tokens OpenAI's chat format adds per message (role and separators).
pub const OPENAI_PER_MESSAGE: u64 = 3;

/// Which tokenizer an OpenAI-compatible model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    /// `o200k_base`: gpt-4o, gpt-4.1, gpt-5 and the o-series.
    O200k,
    /// `cl100k_base`: gpt-4, gpt-3.5 and unknown models.
    Cl100k,
    /// A quarter of the characters, rounded up (Gemini, Anthropic).
    Quarter,
}

impl Tokenizer {
    /// The tokenizer the mock counts `model` with in `dialect`.
    pub fn for_model(dialect: MockDialect, model: &str) -> Self {
        if dialect != MockDialect::OpenAi {
            return Tokenizer::Quarter;
        }
        let m = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        // A fine-tuned model (`ft:gpt-4o-mini:org::id`) counts as its base model.
        let m = m.strip_prefix("ft:").unwrap_or(&m).to_owned();
        let o_series = ["o1", "o3", "o4"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}-")));
        if o_series
            || ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5"]
                .iter()
                .any(|p| m.starts_with(p))
        {
            Tokenizer::O200k
        } else {
            Tokenizer::Cl100k
        }
    }

    /// Tokens in `text`.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let bpe = match self {
            Tokenizer::Quarter => return quarter_tokens(text),
            Tokenizer::O200k => o200k(),
            Tokenizer::Cl100k => cl100k(),
        };
        match bpe {
            Some(b) => u64::try_from(b.encode_ordinary(text).len()).unwrap_or(u64::MAX),
            // A tokenizer that cannot be built: a byte count is an upper bound of any BPE count.
            None => u64::try_from(text.len()).unwrap_or(u64::MAX),
        }
    }
}

/// Builds both tokenizers now (blocking work, once per process): [`super::serve`] does it on
/// tokio's blocking pool before it listens, so a request's arrival is never stamped late by
/// the time a tokenizer takes to build (hundreds of milliseconds in a debug build).
pub fn build_tokenizers() {
    o200k();
    cl100k();
}

fn o200k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn cl100k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// A quarter of the characters, rounded up.
pub fn quarter_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

/// The largest output `model` can produce: the cap charged when a request sends none.
/// OpenAI: gpt-5 128000, o-series 100000, gpt-4.1 32768, gpt-4o 16384, gpt-4 8192,
/// gpt-3.5 4096, others 16384. Gemini: 2.5 models 65536, others 8192. Anthropic: 8192 (the
/// API requires `max_tokens`, so this is never charged there).
pub fn model_max_output(dialect: MockDialect, model: &str) -> u64 {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    match dialect {
        MockDialect::OpenAi => {
            if m.starts_with("gpt-5") {
                128_000
            } else if ["o1", "o3", "o4"].iter().any(|p| m.starts_with(p)) {
                100_000
            } else if m.starts_with("gpt-4.1") {
                32_768
            } else if m.starts_with("gpt-4o") || m.starts_with("chatgpt-4o") {
                16_384
            } else if m.starts_with("gpt-3.5") {
                4_096
            } else if m.starts_with("gpt-4") {
                8_192
            } else {
                16_384
            }
        }
        MockDialect::Gemini => {
            if m.contains("2.5") {
                65_536
            } else {
                8_192
            }
        }
        MockDialect::Anthropic => 8_192,
    }
}

/// The input tokens of `request`, counted as its dialect's provider does (module docs).
pub fn input_tokens(request: &MockRequest) -> u64 {
    let tk = Tokenizer::for_model(request.dialect, &request.model);
    let per_message = if tk == Tokenizer::Quarter {
        0
    } else {
        OPENAI_PER_MESSAGE
    };
    let mut total: u64 = 0;
    if !request.system.is_empty() {
        total = total
            .saturating_add(per_message)
            .saturating_add(tk.count(&request.system));
    }
    for turn in &request.turns {
        total = total.saturating_add(per_message);
        for part in &turn.parts {
            let n = match part {
                Part::Text(t) => tk.count(t),
                Part::ToolCall {
                    name, arguments, ..
                } => tk.count(name).saturating_add(tk.count(arguments)),
                Part::ToolResult { name, content, .. } => {
                    // OpenAI does not send the name with a tool message.
                    let name = if tk == Tokenizer::Quarter { name } else { "" };
                    tk.count(name).saturating_add(tk.count(content))
                }
                Part::Image(_) => super::images::image_tokens(request.dialect),
            };
            total = total.saturating_add(n);
        }
    }
    for tool in &request.tools {
        total = total
            .saturating_add(tk.count(&tool.name))
            .saturating_add(tk.count(&tool.description))
            .saturating_add(tk.count(&tool.parameters));
    }
    total
}

/// The output tokens of a reply with `text` and an optional tool call `(name, arguments JSON)`.
pub fn output_tokens(
    dialect: MockDialect,
    model: &str,
    text: &str,
    call: Option<(&str, &str)>,
) -> u64 {
    let tk = Tokenizer::for_model(dialect, model);
    let call = call.map_or(0, |(n, a)| tk.count(n).saturating_add(tk.count(a)));
    tk.count(text).saturating_add(call)
}

/// The longest prefix of `text` (at a character boundary) of at most `cap` tokens.
pub fn cut_to(dialect: MockDialect, model: &str, text: &str, cap: u64) -> String {
    let tk = Tokenizer::for_model(dialect, model);
    let mut keep: Vec<char> = text.chars().collect();
    while !keep.is_empty() && tk.count(&keep.iter().collect::<String>()) > cap {
        let next = keep.len().saturating_mul(3) / 4;
        keep.truncate(next.min(keep.len().saturating_sub(1)));
    }
    keep.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_the_model_family() {
        let t = |m| Tokenizer::for_model(MockDialect::OpenAi, m);
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "o1",
            "o3-mini",
            "o4-mini",
            "openai/gpt-4o",
            "gpt-4.5-preview",
            "ft:gpt-4o-mini:acme::abc123",
        ] {
            assert_eq!(t(m), Tokenizer::O200k, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-3.5-turbo",
            "llama-3.3-70b",
            "mock-model",
            "omni",
        ] {
            assert_eq!(t(m), Tokenizer::Cl100k, "{m}");
        }
        assert_eq!(
            Tokenizer::for_model(MockDialect::Gemini, "gpt-4o"),
            Tokenizer::Quarter
        );
    }

    #[test]
    fn counts() {
        assert_eq!(quarter_tokens("abcde"), 2);
        assert_eq!(Tokenizer::Quarter.count(""), 0);
        // Both BPEs split this into these two words.
        assert_eq!(Tokenizer::Cl100k.count("hello world"), 2);
        assert_eq!(Tokenizer::O200k.count("hello world"), 2);
        let cut = cut_to(MockDialect::Gemini, "g", "abcdefghijklmnop", 2);
        assert!(quarter_tokens(&cut) <= 2 && !cut.is_empty(), "{cut}");
        assert_eq!(model_max_output(MockDialect::OpenAi, "gpt-4o-mini"), 16_384);
        assert_eq!(model_max_output(MockDialect::OpenAi, "whatever"), 16_384);
        assert_eq!(model_max_output(MockDialect::OpenAi, "gpt-4"), 8_192);
    }
}
