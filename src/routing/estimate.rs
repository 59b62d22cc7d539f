//! Token estimates for quota reservations: the prompt counted with the `cl100k_base` tokenizer
//! (built once per process and shared: building it takes a noticeable fraction of a second)
//! plus the output cap.
//!
//! Counting is the costliest step of a rate-limited call (about 1 µs per token), and prompts
//! repeat a lot: the same system message every turn and the same answers in every agent's
//! prompt (one line each in the answers block). So a text is counted line by line, each line
//! through a process-wide cache, plus one token per newline. The tokenizer mostly splits at
//! newlines anyway, so in practice the sum is the exact count or a few percent above it (runs of
//! newlines count once per newline); settlement charges the real usage in the end.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

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

/// Entries kept before the cache is emptied and starts over.
const CACHE_CAPACITY: usize = 4096;

/// [`count_tokens`] through a process-wide cache keyed by the text's hash and length.
pub fn count_tokens_cached(text: &str) -> u64 {
    static CACHE: OnceLock<Mutex<HashMap<(u64, usize), u64>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
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
    let n = count_tokens(text);
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if c.len() >= CACHE_CAPACITY {
        c.clear();
    }
    c.insert(key, n);
    n
}

/// Tokens in `text`, counted line by line through the cache (see the module docs).
pub fn estimate_text(text: &str) -> u64 {
    text.split('\n')
        .map(|line| {
            if line.is_empty() {
                0
            } else {
                count_tokens_cached(line)
            }
        })
        .sum::<u64>()
        + text.bytes().filter(|b| *b == b'\n').count() as u64
}

/// The tokens a call may use: the prompt (messages and tool schemas) plus the output cap.
pub fn estimate_request(request: &ChatRequest) -> u64 {
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| estimate_text(&m.content) + PER_MESSAGE_OVERHEAD)
        .sum();
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| {
            count_tokens_cached(&t.description) + count_tokens_cached(&t.parameters.to_string())
        })
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
            options: Default::default(),
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
        assert_eq!(count_tokens_cached("hello world"), 2);
        assert_eq!(count_tokens_cached("hello world, again"), 4);
        assert_eq!(count_tokens_cached("hello world"), 2);
    }

    #[test]
    fn line_by_line_estimate_is_never_below_and_close_to_exact() {
        let text = "<ORIGINAL MESSAGE> Why is the sky blue? <END OF ORIGINAL MESSAGE>\n\n\
                    <CURRENT ANSWERS from the agents>\n\
                    <agent1.1> Rayleigh scattering favours short wavelengths. <end of agent1.1>\n\
                    <agent2.1> Blue light scatters more; violet is absorbed. <end of agent2.1>\n\
                    <END OF CURRENT ANSWERS>";
        let exact = count_tokens(text);
        let estimate = estimate_text(text);
        assert!(
            estimate >= exact && estimate <= exact + exact / 10,
            "{estimate} vs {exact}"
        );
    }
}
