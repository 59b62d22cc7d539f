//! Fault injection: which admitted requests the mock answers badly, and how.
//!
//! A spec is a comma-separated list of `KIND:TRIGGER` rules, checked in order; the first rule
//! that fires decides the request's fault.
//!
//! - KIND: an HTTP status (`500`, `502`, `503`, `504`, `529`, `401`, `403`, `429`...: answered
//!   in the dialect's error shape; `429` here carries no retry information or headers), `reset`
//!   (the connection is dropped right after the status line, before any body byte), `slow`
//!   (the answer is delayed by the spec's slow delay), `truncate` (the body or stream is cut
//!   half-way), `malformed` (a 200 whose body, or one stream event, is not JSON), `hostile`
//!   (a reply with absurd rate-limit values, a different kind each time the rule fires) and
//!   `hostile-KIND` for one kind: `huge`, `nan`, `negative`, `empty`, `garbage`, `exponent`,
//!   `far-future`, `past` (429s whose Retry-After, reset headers, "try again in" text or
//!   `retryDelay` hold that value) and `limits` (a 200 answer with absurd limit headers); see
//!   [`super::hostile`].
//! - TRIGGER: a probability `0.1` (drawn from the seeded generator), `key=K` (every request sent
//!   with key `K`), `first=N` (the first N requests that reach this rule), `every=N` (every Nth).
//! - One extra item `slow_ms:N` sets the slow delay (default 2000 ms).
//!
//! Example: `500:0.1,reset:0.05,slow:0.1,truncate:0.05,malformed:0.05,401:key=badkey`, or
//! `hostile:every=2,hostile-huge:key=k1`.
//! Auth faults (`401`, `403`) are checked before the limits (a refused key is not counted);
//! the others apply to admitted requests.

use std::time::Duration;

use super::hostile::Hostile;

/// How a request is answered badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this HTTP status with the dialect's error body.
    Status(u16),
    /// Drop the connection before the body.
    Reset,
    /// Delay the answer.
    Slow,
    /// Cut the body or stream half-way.
    Truncate,
    /// Send a body (or stream event) that is not JSON.
    Malformed,
    /// A reply with absurd rate-limit values.
    Hostile(Hostile),
    /// In a rule: the next hostile kind each time it fires (drawn as [`Fault::Hostile`]).
    HostileRotation,
}

impl Fault {
    /// Whether the fault is decided before the limits (auth refusals).
    pub fn is_auth(self) -> bool {
        matches!(self, Fault::Status(401 | 403))
    }
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// With this probability.
    Probability(f64),
    /// For every request with this key.
    Key(String),
    /// For the first N requests reaching the rule.
    First(u64),
    /// For every Nth request reaching the rule.
    Every(u64),
}

/// One `KIND:TRIGGER` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// When.
    pub trigger: Trigger,
}

/// A parsed `--faults` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Rules, first match wins.
    pub rules: Vec<FaultRule>,
    /// How long `slow` delays an answer.
    pub slow_delay: Duration,
    /// Seed of the generator drawing probabilities.
    pub seed: u64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            slow_delay: Duration::from_millis(2000),
            seed: 0,
        }
    }
}

/// A spec that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec item `{item}`: {reason}")]
pub struct FaultSpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong and what would be valid.
    pub reason: String,
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a spec (see the module docs); an empty string means no faults.
    pub fn parse(spec: &str) -> Result<Self, FaultSpecError> {
        let mut out = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let err = |reason: &str| FaultSpecError {
                item: item.to_owned(),
                reason: reason.to_owned(),
            };
            let (kind, trigger) = item
                .split_once(':')
                .ok_or_else(|| err("expected KIND:TRIGGER, e.g. 500:0.1"))?;
            if kind == "slow_ms" {
                let ms: u64 = trigger
                    .parse()
                    .map_err(|_| err("slow_ms takes milliseconds"))?;
                out.slow_delay = Duration::from_millis(ms);
                continue;
            }
            let fault = match kind {
                "reset" => Fault::Reset,
                "slow" => Fault::Slow,
                "truncate" => Fault::Truncate,
                "malformed" => Fault::Malformed,
                "hostile" => Fault::HostileRotation,
                k if k.starts_with("hostile-") => {
                    match Hostile::from_name(&k["hostile-".len()..]) {
                        Some(h) => Fault::Hostile(h),
                        None => {
                            return Err(err(
                                "hostile kinds: huge, nan, negative, empty, garbage, exponent, far-future, past, limits",
                            ));
                        }
                    }
                }
                k => match k.parse::<u16>() {
                    Ok(s) if (400..=599).contains(&s) => Fault::Status(s),
                    _ => {
                        return Err(err(
                            "KIND must be an HTTP status 400..=599, reset, slow, truncate, malformed, hostile or hostile-KIND",
                        ));
                    }
                },
            };
            let count = |v: &str| -> Result<u64, FaultSpecError> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("expected a whole number above 0"))
            };
            let trigger = if let Some(k) = trigger.strip_prefix("key=") {
                Trigger::Key(k.to_owned())
            } else if let Some(n) = trigger.strip_prefix("first=") {
                Trigger::First(count(n)?)
            } else if let Some(n) = trigger.strip_prefix("every=") {
                Trigger::Every(count(n)?)
            } else {
                let p: f64 = trigger
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=1.0).contains(p))
                    .ok_or_else(|| {
                        err("TRIGGER must be a probability 0..=1, key=K, first=N or every=N")
                    })?;
                Trigger::Probability(p)
            };
            out.rules.push(FaultRule { fault, trigger });
        }
        Ok(out)
    }
}

/// Draws faults for requests: the spec plus per-rule counters and the seeded generator.
#[derive(Debug)]
pub struct FaultDice {
    spec: FaultSpec,
    seen: Vec<u64>,
    rng: fastrand::Rng,
    hostile_turn: usize,
}

impl FaultDice {
    /// Dice for `spec`.
    pub fn new(spec: FaultSpec) -> Self {
        Self {
            seen: vec![0; spec.rules.len()],
            rng: fastrand::Rng::with_seed(spec.seed),
            hostile_turn: 0,
            spec,
        }
    }

    /// The slow delay of the spec.
    pub fn slow_delay(&self) -> Duration {
        self.spec.slow_delay
    }

    /// The fault for a request with `key`, among auth faults (`auth = true`) or the others.
    pub fn draw(&mut self, key: &str, auth: bool) -> Option<Fault> {
        for (i, rule) in self.spec.rules.iter().enumerate() {
            if rule.fault.is_auth() != auth {
                continue;
            }
            let fires = match &rule.trigger {
                Trigger::Key(k) => k == key,
                Trigger::Probability(p) => self.rng.f64() < *p,
                Trigger::First(n) => {
                    self.seen[i] += 1;
                    self.seen[i] <= *n
                }
                Trigger::Every(n) => {
                    self.seen[i] += 1;
                    self.seen[i] % n == 0
                }
            };
            if fires {
                if rule.fault == Fault::HostileRotation {
                    let kind = Hostile::ALL[self.hostile_turn % Hostile::ALL.len()];
                    self.hostile_turn += 1;
                    return Some(Fault::Hostile(kind));
                }
                return Some(rule.fault);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = FaultSpec::parse(
            "500:0.1,reset:0.05,slow:0.1,truncate:0.05,malformed:0.05,401:key=badkey,slow_ms:50",
        )
        .unwrap();
        assert_eq!(s.rules.len(), 6);
        assert_eq!(s.rules[5].fault, Fault::Status(401));
        assert_eq!(s.rules[5].trigger, Trigger::Key("badkey".into()));
        assert_eq!(s.slow_delay, Duration::from_millis(50));
        assert!(FaultSpec::parse("").unwrap().rules.is_empty());
    }

    #[test]
    fn refuses_bad_items() {
        for bad in [
            "500",
            "700:0.1",
            "boom:0.1",
            "500:1.5",
            "500:first=0",
            "slow_ms:x",
            "hostile-bogus:0.1",
        ] {
            assert!(FaultSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn triggers() {
        let mut d =
            FaultDice::new(FaultSpec::parse("401:key=bad,503:first=2,truncate:every=3").unwrap());
        assert_eq!(d.draw("bad", true), Some(Fault::Status(401)));
        assert_eq!(d.draw("good", true), None);
        let got: Vec<_> = (0..6).map(|_| d.draw("good", false)).collect();
        assert_eq!(
            got,
            vec![
                Some(Fault::Status(503)),
                Some(Fault::Status(503)),
                None,
                None,
                Some(Fault::Truncate),
                None
            ]
        );
    }

    #[test]
    fn hostile_kinds_rotate_or_stay() {
        let mut d = FaultDice::new(FaultSpec::parse("hostile-nan:key=n,hostile:1.0").unwrap());
        assert_eq!(d.draw("n", false), Some(Fault::Hostile(Hostile::Nan)));
        let got: Vec<_> = (0..10).map(|_| d.draw("k", false)).collect();
        let mut want: Vec<_> = Hostile::ALL
            .iter()
            .map(|h| Some(Fault::Hostile(*h)))
            .collect();
        want.push(Some(Fault::Hostile(Hostile::Huge)));
        assert_eq!(got, want);
    }

    #[test]
    fn probabilities_are_seeded() {
        let spec = FaultSpec::parse("500:0.5").unwrap();
        let run = || {
            let mut d = FaultDice::new(spec.clone());
            (0..200).filter(|_| d.draw("k", false).is_some()).count()
        };
        let n = run();
        assert_eq!(n, run());
        assert!((60..140).contains(&n), "{n}");
    }
}
