//! Token estimates for quota reservations: the prompt counted with the `cl100k_base` tokenizer
//! (built once per process and shared: building it takes a noticeable fraction of a second)
//! plus the output cap.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::provider::ChatRequest;

/// Output tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Per-message overhead (role markers) the chat formats add, in tokens.
const PER_MESSAGE_OVERHEAD: u64 = 4;

fn tokenizer() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// Tokens in `text`: exact for `cl100k_base`; about four per three words if the tokenizer could
/// not be built.
pub fn count_tokens(text: &str) -> u64 {
    match tokenizer() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => (text.split_whitespace().count() as u64 * 4).div_ceil(3),
    }
}

/// The tokens a call may use: the prompt (messages and tool schemas) plus the output cap.
pub fn estimate_request(request: &ChatRequest) -> u64 {
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| count_tokens(&m.content) + PER_MESSAGE_OVERHEAD)
        .sum();
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| count_tokens(&t.description) + count_tokens(&t.parameters.to_string()))
        .sum();
    messages + tools + u64::from(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Message;

    #[test]
    fn counts_with_the_real_tokenizer_and_adds_the_output_cap() {
        assert_eq!(count_tokens("hello world"), 2);
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::user("hello world")],
            tools: Vec::new(),
            temperature: None,
            max_tokens: Some(100),
            stream: false,
        };
        assert_eq!(estimate_request(&request), 2 + PER_MESSAGE_OVERHEAD + 100);
        let unset = ChatRequest {
            max_tokens: None,
            ..request
        };
        assert_eq!(
            estimate_request(&unset),
            2 + PER_MESSAGE_OVERHEAD + u64::from(DEFAULT_MAX_TOKENS)
        );
    }
}
