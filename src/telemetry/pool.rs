//! Typed recording of the moves of pooled calls: which model a call was given, when it moved to
//! another and why, and when no model of the pool could take it at once. Routing records them
//! where it emits `model_selected`, `model_rotated` and `no_model_available`
//! ([`record_pool_event`]), so each move counts once however many listen to the run's events.

use metrics::counter;

use super::catalog;
use crate::agent::events::RunEvent;

/// Why a pooled call moved to another model (the `reason` label of the rotations counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RotationReason {
    /// The model answered 429 (rate or quota limit).
    RateLimited,
    /// The model was overloaded (529, 503 with an overload body).
    Overloaded,
    /// A transient failure: transport error, 5xx, timeout.
    Transient,
    /// The key was refused.
    Auth,
    /// Any other failure.
    Other,
}

impl RotationReason {
    /// The reason of a `model_rotated` event (`rate_limited`, `overloaded`, `transient`,
    /// `auth`; anything else is `other`, so the label stays a small set).
    pub fn classify(reason: &str) -> Self {
        match reason {
            "rate_limited" => RotationReason::RateLimited,
            "overloaded" => RotationReason::Overloaded,
            "transient" => RotationReason::Transient,
            "auth" => RotationReason::Auth,
            _ => RotationReason::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationReason::RateLimited => "rate_limited",
            RotationReason::Overloaded => "overloaded",
            RotationReason::Transient => "transient",
            RotationReason::Auth => "auth",
            RotationReason::Other => "other",
        }
    }
}

/// A pooled call of `pool` was given `model` at `provider` (its first attempt).
pub fn model_selected(pool: &str, provider: &str, model: &str) {
    counter!(
        catalog::MODEL_SELECTED,
        "pool" => pool.to_owned(),
        "provider" => provider.to_owned(),
        "model" => model.to_owned()
    )
    .increment(1);
}

/// A pooled call of `pool` moved from `from` to `to` (both `<provider>/<model>`).
pub fn model_rotated(pool: &str, from: &str, to: &str, reason: RotationReason) {
    counter!(
        catalog::MODEL_ROTATIONS,
        "pool" => pool.to_owned(),
        "from" => from.to_owned(),
        "to" => to.to_owned(),
        "reason" => reason.as_str()
    )
    .increment(1);
}

/// No model of `pool` could take a call at once (it waited for the earliest freeing one, or
/// none was capable).
pub fn model_unavailable(pool: &str) {
    counter!(catalog::MODEL_UNAVAILABLE, "pool" => pool.to_owned()).increment(1);
}

/// Records `event` when it is one of the pool moves; any other event is left alone (the run
/// bridge, [`super::record_run_event`], records those and skips these).
pub fn record_pool_event(event: &RunEvent) {
    match event {
        RunEvent::ModelSelected {
            pool,
            provider,
            model,
            ..
        } => model_selected(pool, provider, model),
        RunEvent::ModelRotated {
            pool,
            from,
            to,
            reason,
            ..
        } => model_rotated(pool, from, to, RotationReason::classify(reason)),
        RunEvent::NoModelAvailable { pool, .. } => model_unavailable(pool),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn render(events: &[RunEvent]) -> String {
        let recorder = crate::telemetry::local_recorder().unwrap();
        metrics::with_local_recorder(&recorder, || {
            for e in events {
                record_pool_event(e);
                // The run bridge sees the same events and must not count them again.
                crate::telemetry::record_run_event(e);
            }
        });
        recorder.handle().render()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn each_move_is_counted_once_with_bounded_labels() {
        let selected = |model: &str| RunEvent::ModelSelected {
            agent: "a1".into(),
            pool: "fast".into(),
            provider: "openai".into(),
            model: model.into(),
        };
        let text = render(&[
            selected("cheap"),
            RunEvent::ModelRotated {
                agent: "a1".into(),
                pool: "fast".into(),
                from: "openai/cheap".into(),
                to: "openai/mid".into(),
                reason: "rate_limited".into(),
            },
            RunEvent::ModelRotated {
                agent: "a2".into(),
                pool: "fast".into(),
                from: "openai/cheap".into(),
                to: "openai/mid".into(),
                reason: "something a provider said".into(),
            },
            selected("cheap"),
            RunEvent::NoModelAvailable {
                agent: "a1".into(),
                pool: "fast".into(),
                eta_ms: Some(1200),
            },
            RunEvent::NoModelAvailable {
                agent: "a2".into(),
                pool: "fast".into(),
                eta_ms: None,
            },
        ]);
        assert_eq!(
            line(&text, "massgen_model_selected_total{"),
            Some(r#"massgen_model_selected_total{pool="fast",provider="openai",model="cheap"} 2"#)
        );
        let rotations = |reason: &str| {
            line(
                &text,
                &format!(
                    r#"massgen_model_rotations_total{{pool="fast",from="openai/cheap",to="openai/mid",reason="{reason}"}}"#
                ),
            )
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
        };
        assert_eq!(rotations("rate_limited").as_deref(), Some("1"));
        assert_eq!(rotations("other").as_deref(), Some("1"));
        assert!(!text.contains("something a provider said"), "{text}");
        assert_eq!(
            line(&text, "massgen_model_unavailable_total{"),
            Some(r#"massgen_model_unavailable_total{pool="fast"} 2"#)
        );
    }
}
