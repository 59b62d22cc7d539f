//! Durations in configuration files: `500ms`, `10s`, `1.5s`, `1m`, `1h`, `1d`, or a bare number
//! of seconds.

use std::time::Duration;

use serde_yaml::Value;

/// Parses a duration written as text with a unit (`ms`, `s`, `m`, `h`, `d`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    if num.is_empty() {
        return Err(format!(
            "`{text}` is not a duration; write e.g. 500ms, 10s, 1m, 1h or 1d"
        ));
    }
    let factor_ms: f64 = match unit {
        "ms" => 1.0,
        "s" | "" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; write e.g. 500ms, 10s, 1m, 1h or 1d"
            ));
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 500ms, 10s, 1m, 1h or 1d"))?;
    let ms = n * factor_ms;
    if !ms.is_finite() || ms > 1e15 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

/// A duration from YAML: a string with a unit, or a non-negative number of seconds.
pub(crate) fn duration_from_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => parse_duration(s),
        Value::Number(n) => match n.as_f64() {
            Some(secs) if secs >= 0.0 && secs.is_finite() && secs < 1e12 => {
                Ok(Duration::from_secs_f64(secs))
            }
            _ => Err(format!(
                "`{n}` is not a duration; write e.g. 500ms, 10s, 1m, 1h or 1d"
            )),
        },
        _ => Err("expected a duration such as 500ms, 10s, 1m, 1h or 1d".to_owned()),
    }
}

/// The shortest exact text for `d` in the same units: `3s`, `1500ms`, `1m`.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (size, unit) in units {
        if ms > 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
#[expect(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn shown_back_in_the_same_units() {
        for text in ["500ms", "3s", "1m", "2h", "1d", "1500ms", "0ms"] {
            assert_eq!(show_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn numbers_are_seconds() {
        let v: Value = serde_yaml::from_str("2.5").unwrap();
        assert_eq!(
            duration_from_value(&v).unwrap(),
            Duration::from_millis(2500)
        );
        let v: Value = serde_yaml::from_str("-2").unwrap();
        assert!(duration_from_value(&v).is_err());
        let v: Value = serde_yaml::from_str("[1]").unwrap();
        assert!(duration_from_value(&v).is_err());
    }
}
