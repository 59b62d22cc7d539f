//! A small table of list prices, so runs on known models can report their cost in US dollars.
//!
//! Prices are per million tokens at the providers' published paid-tier rates for short prompts
//! (long-context and batch rates differ). Unknown models, free tiers, local servers and the
//! simulated backend have no price: no cost is recorded for them rather than a wrong one.

use crate::provider::Usage;

/// The price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Dollars per million input (prompt) tokens.
    pub input_per_mtok: f64,
    /// Dollars per million output (completion) tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// The cost of `input` and `output` tokens, in dollars.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1_000_000.0
    }

    /// The cost of a call's reported usage, in dollars.
    pub fn cost_of(&self, usage: Usage) -> f64 {
        self.cost(usage.input_tokens, usage.output_tokens)
    }
}

/// Model-name prefixes and their prices. The longest matching prefix wins, so dated snapshots
/// (`gpt-4o-mini-2024-07-18`) find their family and `gpt-4o-mini` is not priced as `gpt-4o`.
const PRICES: &[(&str, f64, f64)] = &[
    // OpenAI
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-5", 1.25, 10.00),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-5-nano", 0.05, 0.40),
    ("o3", 2.00, 8.00),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    // Anthropic
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-haiku-4-5", 1.00, 5.00),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-opus-4-5", 5.00, 25.00),
    // Google Gemini (paid tier, prompts up to 200k tokens)
    ("gemini-2.0-flash", 0.10, 0.40),
    ("gemini-2.0-flash-lite", 0.075, 0.30),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("gemini-2.5-flash-lite", 0.10, 0.40),
    ("gemini-2.5-pro", 1.25, 10.00),
    // Groq-hosted open models
    ("llama-3.1-8b-instant", 0.05, 0.08),
    ("llama-3.3-70b-versatile", 0.59, 0.79),
];

/// Providers whose calls are never billed by this table (local or in-process backends).
const UNPRICED_PROVIDERS: &[&str] = &["simulated", "vllm", "lmstudio", "sglang", "ollama"];

/// The list price of `model` served by `provider`, when known. Provider-prefixed model names
/// (`openai/gpt-4o-mini`, `models/gemini-2.5-pro`) are matched on their last path segment.
pub fn lookup(provider: &str, model: &str) -> Option<Price> {
    if UNPRICED_PROVIDERS
        .iter()
        .any(|p| provider.eq_ignore_ascii_case(p))
    {
        return None;
    }
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    PRICES
        .iter()
        .filter(|(prefix, _, _)| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '@', ':']))
        })
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|&(_, input_per_mtok, output_per_mtok)| Price {
            input_per_mtok,
            output_per_mtok,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_snapshots_match() {
        let mini = lookup("openai", "gpt-4o-mini-2024-07-18");
        assert_eq!(mini.map(|p| p.input_per_mtok), Some(0.15));
        assert_eq!(
            lookup("openai", "gpt-4o").map(|p| p.input_per_mtok),
            Some(2.50)
        );
        assert_eq!(
            lookup("gemini", "models/gemini-2.5-flash-lite").map(|p| p.output_per_mtok),
            Some(0.40)
        );
        assert_eq!(
            lookup("gemini", "gemini-2.5-flash").map(|p| p.output_per_mtok),
            Some(2.50)
        );
    }

    #[test]
    fn unknown_models_and_local_backends_have_no_price() {
        assert_eq!(lookup("openai", "my-finetune"), None);
        assert_eq!(lookup("openai", "gpt-4obvious"), None);
        assert_eq!(lookup("simulated", "gpt-4o"), None);
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let p = Price {
            input_per_mtok: 2.0,
            output_per_mtok: 8.0,
        };
        let usd = p.cost(1_000_000, 500_000);
        assert!((usd - 6.0).abs() < 1e-9, "{usd}");
    }
}
