//! Provider options of a backend (`top_p`, `reasoning`, `text`, `parallel_tool_calls`,
//! `betas`, ...): validated into [`RequestOptions`], which each adapter writes in its API's
//! shape. An option the backend's API does not take is dropped with a warning.

use serde_yaml::Value;

use super::diagnostics::Diagnostics;
use super::document::Document;
use super::error::{ConfigError, KeyPath, shown, suggestion};
use super::team_raw::RawBackend;
use super::types::BackendKind;
use crate::provider::RequestOptions;

/// The reasoning efforts chat completions take (`reasoning_effort`).
pub(crate) const EFFORTS: [&str; 6] = ["none", "minimal", "low", "medium", "high", "xhigh"];
/// The answer verbosities chat completions take (`verbosity`).
pub(crate) const VERBOSITY: [&str; 3] = ["low", "medium", "high"];

/// The API family a backend speaks, for which options it takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    OpenAiCompatible,
    Gemini,
    Anthropic,
    InProcess,
}

fn api(kind: BackendKind) -> Api {
    match kind {
        BackendKind::OpenAi => Api::OpenAi,
        BackendKind::Gemini => Api::Gemini,
        BackendKind::Claude => Api::Anthropic,
        BackendKind::Simulated => Api::InProcess,
        _ => Api::OpenAiCompatible,
    }
}

/// Whether the API of `kind` takes option `name`.
fn takes(kind: BackendKind, name: &str) -> bool {
    let api = api(kind);
    match name {
        "top_p" => api != Api::InProcess,
        "top_k" => matches!(api, Api::OpenAiCompatible | Api::Gemini | Api::Anthropic),
        "reasoning" => matches!(api, Api::OpenAi | Api::OpenAiCompatible | Api::Gemini),
        "text" | "chat_template_kwargs" | "extra_body" => {
            matches!(api, Api::OpenAi | Api::OpenAiCompatible)
        }
        "parallel_tool_calls" => {
            matches!(api, Api::OpenAi | Api::OpenAiCompatible | Api::Anthropic)
        }
        "betas" => api == Api::Anthropic,
        _ => false,
    }
}

/// Request fields `extra_body` may not set: each changes what a provider counts against its
/// limits (the output cap, several completions, predicted output) or replaces what massgen-rs
/// builds and reserves for (the conversation, the tools, streaming).
const COUNTED_KEYS: [&str; 10] = [
    "max_tokens",
    "max_completion_tokens",
    "n",
    "best_of",
    "prediction",
    "messages",
    "tools",
    "model",
    "stream",
    "stream_options",
];

/// Takes the provider options out of `raw` (the backend at `path`), validated; options the
/// backend's API does not take are dropped with a warning.
pub(crate) fn options(
    doc: &Document,
    path: &KeyPath,
    kind: BackendKind,
    raw: &mut RawBackend,
    diags: &mut Diagnostics<'_>,
) -> RequestOptions {
    // Every bad value is reported (the file's other problems too); a bad option is left unset.
    let mut o = RequestOptions::default();
    if let Some(p) = raw.top_p.take() {
        if (0.0..=1.0).contains(&p) {
            o.top_p = Some(p as f32);
        } else {
            diags.error(doc.error(
                &path.key("top_p"),
                format!("{p} is out of range: top_p is 0.0 to 1.0"),
            ));
        }
    }
    if let Some(k) = raw.top_k.take() {
        match u32::try_from(k).ok().filter(|k| *k >= 1) {
            Some(k) => o.top_k = Some(k),
            None => diags.error(doc.error(
                &path.key("top_k"),
                format!("{k} is not valid: top_k is a whole number from 1 up"),
            )),
        }
    }
    let (effort, effort_key) = match (raw.reasoning.take(), raw.reasoning_effort.take()) {
        (Some(_), Some(_)) => {
            diags.error(doc.error(
                &path.key("reasoning_effort"),
                "give either `reasoning: {effort: ...}` or `reasoning_effort`, not both",
            ));
            (None, path.key("reasoning_effort"))
        }
        (Some(r), None) => {
            if r.summary.is_some() {
                diags.warn(
                    "reasoning.summary",
                    &path.key("reasoning").key("summary"),
                    "MassGen's `reasoning.summary` has no effect here — reasoning summaries come from OpenAI's Responses API, and massgen-rs speaks chat completions (no summary is shown)",
                );
            }
            (r.effort, path.key("reasoning").key("effort"))
        }
        (None, e) => (e, path.key("reasoning_effort")),
    };
    o.reasoning_effort = diags
        .take(word(doc, &effort_key, effort, &EFFORTS))
        .flatten();
    let verbosity = match (raw.text.take(), raw.verbosity.take()) {
        (Some(_), Some(_)) => {
            diags.error(doc.error(
                &path.key("verbosity"),
                "give either `text: {verbosity: ...}` or `verbosity`, not both",
            ));
            (None, path.key("verbosity"))
        }
        (Some(t), None) => (t.verbosity, path.key("text").key("verbosity")),
        (None, v) => (v, path.key("verbosity")),
    };
    o.verbosity = diags
        .take(word(doc, &verbosity.1, verbosity.0, &VERBOSITY))
        .flatten();
    o.parallel_tool_calls = raw.parallel_tool_calls.take();
    o.betas = raw.betas.take().unwrap_or_default();
    if let Some(v) = raw.chat_template_kwargs.take() {
        o.chat_template_kwargs = diags.take(json_map(doc, &path.key("chat_template_kwargs"), v));
    }
    if let Some(v) = raw.extra_body.take() {
        if let Some(serde_json::Value::Object(map)) =
            diags.take(json_map(doc, &path.key("extra_body"), v))
        {
            match map.keys().find(|k| COUNTED_KEYS.contains(&k.as_str())) {
                Some(key) => diags.error(doc.error(
                    &path.key("extra_body").key(key),
                    format!(
                        "`{key}` cannot go through extra_body: it changes what the provider \
                         counts against the quota ({}) or what massgen-rs sends, so the \
                         reservation could not cover it; set the cap with max_tokens",
                        COUNTED_KEYS.join(", ")
                    ),
                )),
                None => o.extra_body = Some(map),
            }
        }
    }
    drop_untaken(path, kind, &mut o, diags);
    o
}

/// Removes the options the API of `kind` does not take, each with a warning.
fn drop_untaken(
    path: &KeyPath,
    kind: BackendKind,
    o: &mut RequestOptions,
    diags: &mut Diagnostics<'_>,
) {
    let mut drop = |name: &str, key: &str, set: bool| {
        if set && !takes(kind, name) {
            diags.warn(
                &format!("option {key} on {}", kind.as_str()),
                &path.key(key),
                format!(
                    "`{key}` is not sent: a `{}` backend's API does not take it",
                    kind.as_str()
                ),
            );
            return true;
        }
        false
    };
    if drop("top_p", "top_p", o.top_p.is_some()) {
        o.top_p = None;
    }
    if drop("top_k", "top_k", o.top_k.is_some()) {
        o.top_k = None;
    }
    if drop("reasoning", "reasoning", o.reasoning_effort.is_some()) {
        o.reasoning_effort = None;
    }
    if drop("text", "text", o.verbosity.is_some()) {
        o.verbosity = None;
    }
    if drop(
        "parallel_tool_calls",
        "parallel_tool_calls",
        o.parallel_tool_calls.is_some(),
    ) {
        o.parallel_tool_calls = None;
    }
    if drop("betas", "betas", !o.betas.is_empty()) {
        o.betas.clear();
    }
    if drop(
        "chat_template_kwargs",
        "chat_template_kwargs",
        o.chat_template_kwargs.is_some(),
    ) {
        o.chat_template_kwargs = None;
    }
    if drop("extra_body", "extra_body", o.extra_body.is_some()) {
        o.extra_body = None;
    }
}

/// One of `words`, with did-you-mean.
fn word(
    doc: &Document,
    path: &KeyPath,
    value: Option<String>,
    words: &[&str],
) -> Result<Option<String>, ConfigError> {
    let Some(v) = value else {
        return Ok(None);
    };
    if words.contains(&v.as_str()) {
        return Ok(Some(v));
    }
    let hint = suggestion(&v, words);
    Err(doc.error(
        path,
        format!(
            "unknown value `{}`.{hint} Valid values: {}",
            shown(&v),
            words.join(", ")
        ),
    ))
}

/// A YAML map as JSON (a map of names to values).
fn json_map(doc: &Document, path: &KeyPath, v: Value) -> Result<serde_json::Value, ConfigError> {
    if !v.is_mapping() {
        return Err(doc.error(path, "expected a map of keys (key: value)"));
    }
    serde_json::to_value(&v).map_err(|e| {
        doc.error(
            path,
            format!("cannot be sent as JSON: {}", shown(&e.to_string())),
        )
    })
}
