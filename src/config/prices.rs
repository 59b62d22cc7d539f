//! [`PriceTable`]: list prices per provider and model, from the built-in
//! `configs/prices.yaml`, overridden entry by entry by a user's prices file
//! (`rate_limit.prices`). The usage ledger prices every call with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde_yaml::Value;

use super::document::Document;
use super::error::{ConfigError, KeyPath, suggestion};
use super::types::BackendKind;

/// The built-in prices file, compiled into the binary.
const BUILTIN: &str = include_str!("../../configs/prices.yaml");
/// The name the built-in file has in errors.
const BUILTIN_NAME: &str = "built-in configs/prices.yaml";

/// The keys one price entry takes.
const ENTRY_KEYS: [&str; 4] = ["input", "output", "source", "as_of"];

/// The price of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Price {
    /// US dollars per million input tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens.
    pub output_per_mtok: f64,
    /// Where the figure comes from (a provider's public pricing page, by name).
    pub source: String,
    /// When it was read there (`YYYY-MM-DD`).
    pub as_of: String,
}

impl Price {
    /// What `input` and `output` tokens cost, in US dollars.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        // Token counts are far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let (i, o) = (input as f64, output as f64);
        (i * self.input_per_mtok + o * self.output_per_mtok) / 1_000_000.0
    }
}

/// Prices per provider and model (see `configs/prices.yaml` for the format).
///
/// Lookup of `(provider, model)`: the provider is taken as the limits file names it (`claude`
/// → `anthropic`); then the entry named exactly `model`; then `model` without a trailing date
/// (`-2024-08-06`, `-20250514`) or `-latest`; then the provider's `default`; else `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    providers: BTreeMap<String, BTreeMap<String, Price>>,
}

impl PriceTable {
    /// The built-in table (a test guarantees it parses).
    pub fn builtin() -> PriceTable {
        static PARSED: OnceLock<PriceTable> = OnceLock::new();
        PARSED
            .get_or_init(|| parse(BUILTIN, BUILTIN_NAME).unwrap_or_default())
            .clone()
    }

    /// Reads and validates a prices file.
    pub fn load_file(path: &Path) -> Result<PriceTable, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(name.clone(), "", None, format!("cannot read: {e}")))?;
        parse(&text, &name)
    }

    /// Validates prices-file text; `file_name` is used in errors.
    pub fn parse(text: &str, file_name: &str) -> Result<PriceTable, ConfigError> {
        parse(text, file_name)
    }

    /// The built-in table overridden by `user` (a prices file), entry by entry.
    pub fn with_file(user: Option<&Path>) -> Result<PriceTable, ConfigError> {
        let mut table = Self::builtin();
        if let Some(path) = user {
            table = table.merged_with(&Self::load_file(path)?);
        }
        Ok(table)
    }

    /// This table with `user`'s entries replacing same-named ones.
    pub fn merged_with(&self, user: &PriceTable) -> PriceTable {
        let mut out = self.clone();
        for (provider, models) in &user.providers {
            let slot = out.providers.entry(provider.clone()).or_default();
            for (model, price) in models {
                slot.insert(model.clone(), price.clone());
            }
        }
        out
    }

    /// The price of `model` at `provider` (a provider name as the ledger records it, e.g.
    /// `claude`, or as the limits file names it, e.g. `anthropic`); `None` when unknown.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&Price> {
        let models = match BackendKind::parse(provider) {
            Some(kind) => self.providers.get(kind.limits_provider())?,
            None => self.providers.get(provider)?,
        };
        if let Some(p) = models.get(model) {
            return Some(p);
        }
        let family = family_of(model);
        if family != model {
            if let Some(p) = models.get(family) {
                return Some(p);
            }
        }
        models.get("default")
    }

    /// Every entry: `(provider, model, price)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Price)> {
        self.providers.iter().flat_map(|(p, ms)| {
            ms.iter()
                .map(move |(m, price)| (p.as_str(), m.as_str(), price))
        })
    }
}

/// `model` without a trailing snapshot date (`-2024-08-06`, `-20250514`) or `-latest`.
fn family_of(model: &str) -> &str {
    if let Some(base) = model.strip_suffix("-latest") {
        return base;
    }
    let bytes = model.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    // -YYYY-MM-DD
    if bytes.len() > 11 {
        let (base, tail) = model.split_at(model.len() - 11);
        let t = tail.as_bytes();
        if t[0] == b'-'
            && digits(&t[1..5])
            && t[5] == b'-'
            && digits(&t[6..8])
            && t[8] == b'-'
            && digits(&t[9..11])
        {
            return base;
        }
    }
    // -YYYYMMDD
    if bytes.len() > 9 {
        let (base, tail) = model.split_at(model.len() - 9);
        let t = tail.as_bytes();
        if t[0] == b'-' && digits(&t[1..]) && (t[1] == b'1' || t[1] == b'2') {
            return base;
        }
    }
    model
}

fn parse(text: &str, file: &str) -> Result<PriceTable, ConfigError> {
    let doc = Document::parse(text, file)?;
    let root = KeyPath::root();
    let map = match &doc.value {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(doc.error(
                &root,
                "the prices file is empty; write e.g. `openai: {gpt-4o: {input: 2.5, output: 10, \
                 source: OpenAI API pricing page, as_of: 2025-08-07}}`",
            ));
        }
        _ => {
            return Err(doc.error(
                &root,
                "a prices file is a map of providers (e.g. `openai:`)",
            ));
        }
    };
    let known: Vec<&str> = BackendKind::ALL
        .iter()
        .map(|k| k.limits_provider())
        .collect();
    let mut table = PriceTable::default();
    for (k, v) in map {
        let provider = name(&doc, &root, k)?;
        let ppath = root.key(&provider);
        if !known.contains(&provider.as_str()) {
            let hint = suggestion(&provider, &known);
            return Err(doc.error(
                &ppath,
                format!(
                    "unknown provider `{provider}`.{hint} Providers: {}",
                    known.join(", ")
                ),
            ));
        }
        let Value::Mapping(models) = v else {
            return Err(doc.error(
                &ppath,
                "expected a map of model names (or `default`) to prices",
            ));
        };
        let slot: &mut BTreeMap<String, Price> = table.providers.entry(provider).or_default();
        for (mk, mv) in models {
            let model = name(&doc, &ppath, mk)?;
            let mpath = ppath.key(&model);
            slot.insert(model, entry(&doc, mv, &mpath)?);
        }
    }
    Ok(table)
}

fn name(doc: &Document, at: &KeyPath, k: &Value) -> Result<String, ConfigError> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(doc.error(at, "keys must be names")),
    }
}

fn entry(doc: &Document, v: &Value, path: &KeyPath) -> Result<Price, ConfigError> {
    let Value::Mapping(m) = v else {
        return Err(doc.error(
            path,
            "expected {input: USD per million input tokens, output: ..., source: ..., as_of: \
             YYYY-MM-DD}",
        ));
    };
    for k in m.keys() {
        let key = name(doc, path, k)?;
        if !ENTRY_KEYS.contains(&key.as_str()) {
            let hint = suggestion(&key, &ENTRY_KEYS);
            return Err(doc.error(
                &path.key(&key),
                format!("unknown key.{hint} A price takes {}", ENTRY_KEYS.join(", ")),
            ));
        }
    }
    let usd = |key: &str| -> Result<f64, ConfigError> {
        let p = path.key(key);
        match m.get(key) {
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(doc.error(&p, "must be a number of US dollars, 0 or more")),
            },
            Some(_) => Err(doc.error(&p, "must be a number of US dollars per million tokens")),
            None => Err(doc.error(
                path,
                format!("missing `{key}` (US dollars per million tokens)"),
            )),
        }
    };
    let text = |key: &str, what: &str| -> Result<String, ConfigError> {
        match m.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(_) => Err(doc.error(&path.key(key), format!("must be {what}"))),
            None => Err(doc.error(path, format!("missing `{key}` ({what})"))),
        }
    };
    let input_per_mtok = usd("input")?;
    let output_per_mtok = usd("output")?;
    let source = text("source", "the name of the page the price comes from")?;
    let as_of = text("as_of", "the date the price was read, YYYY-MM-DD")?;
    if chrono::NaiveDate::parse_from_str(&as_of, "%Y-%m-%d").is_err() {
        return Err(doc.error(
            &path.key("as_of"),
            format!("`{as_of}` is not a date like 2025-08-07"),
        ));
    }
    Ok(Price {
        input_per_mtok,
        output_per_mtok,
        source,
        as_of,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_builtin_table_parses_and_every_entry_names_a_source_and_date() {
        let table = parse(BUILTIN, BUILTIN_NAME).unwrap();
        assert!(table.entries().count() > 20);
        for (p, m, price) in table.entries() {
            assert!(!price.source.is_empty(), "{p}/{m}");
            assert_eq!(price.as_of.len(), 10, "{p}/{m}");
        }
    }

    #[test]
    fn exact_models_dated_snapshots_and_unknown_models() {
        let t = PriceTable::builtin();
        let price = |p: &str, m: &str| {
            t.lookup(p, m)
                .map(|x| (x.input_per_mtok, x.output_per_mtok))
        };
        assert_eq!(price("openai", "gpt-4o"), Some((2.5, 10.0)));
        assert_eq!(price("openai", "gpt-4o-mini"), Some((0.15, 0.6)));
        // Dated snapshots are priced as their family, never as a shorter family.
        assert_eq!(price("openai", "gpt-4o-2024-08-06"), Some((2.5, 10.0)));
        assert_eq!(price("openai", "gpt-4o-mini-2024-07-18"), Some((0.15, 0.6)));
        assert_eq!(
            price("claude", "claude-3-5-haiku-20241022"),
            Some((0.8, 4.0))
        );
        assert_eq!(price("claude", "claude-3-5-haiku-latest"), Some((0.8, 4.0)));
        assert_eq!(
            price("anthropic", "claude-sonnet-4-20250514"),
            Some((3.0, 15.0))
        );
        assert_eq!(price("gemini", "gemini-2.5-flash-lite"), Some((0.1, 0.4)));
        // Unknown models and providers: no price, not a guess.
        assert_eq!(price("openai", "gpt-4o-audio-preview"), None);
        assert_eq!(price("openai", "gpt-4.1-micro"), None);
        assert_eq!(price("gemini", "mock-gemini"), None);
        assert_eq!(price("vllm", "Qwen/Qwen2.5-7B-Instruct"), None);
        // The simulated backend costs nothing, whatever its model is called.
        assert_eq!(price("simulated", "sim-fast"), Some((0.0, 0.0)));
        let cost = t
            .lookup("openai", "gpt-4o")
            .unwrap()
            .cost(1_000_000, 500_000);
        assert!((cost - 7.5).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn a_user_file_replaces_entries_one_by_one() {
        let user = PriceTable::parse(
            "openai:\n  gpt-4o:\n    input: 1\n    output: 2\n    source: our contract\n    as_of: 2026-01-01\n",
            "mine.yaml",
        )
        .unwrap();
        let t = PriceTable::builtin().merged_with(&user);
        assert_eq!(t.lookup("openai", "gpt-4o").unwrap().source, "our contract");
        assert!(t.lookup("openai", "gpt-4o-mini").is_some());
    }

    #[test]
    fn errors_name_the_file_key_and_line() {
        let bad = |text: &str| PriceTable::parse(text, "p.yaml").unwrap_err();
        let e = bad(
            "openai:\n  gpt-4o:\n    input: 2.5\n    output: ten\n    source: x\n    as_of: 2025-01-01\n",
        );
        assert_eq!(e.file(), "p.yaml");
        assert_eq!(e.path(), "openai.gpt-4o.output");
        assert_eq!(e.line(), Some(4));
        let e = bad(
            "openai:\n  gpt-4o:\n    input: 2.5\n    output: 10\n    source: x\n    as_off: 2025-01-01\n",
        );
        assert!(e.message().contains("as_of"), "{e}");
        let e = bad("opena:\n  gpt-4o: {input: 1, output: 1, source: x, as_of: 2025-01-01}\n");
        assert!(e.message().contains("openai"), "{e}");
        let e = bad("openai:\n  gpt-4o: {input: -1, output: 1, source: x, as_of: 2025-01-01}\n");
        assert_eq!(e.path(), "openai.gpt-4o.input");
        let e = bad("openai:\n  gpt-4o: {input: 1, output: 1, source: x, as_of: June}\n");
        assert!(e.to_string().contains("p.yaml:2"), "{e}");
    }
}
