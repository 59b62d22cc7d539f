//! Durations in words, shared by the terminal display and the plain progress lines.

use std::time::Duration;

/// `75.3s` -> `1m15s`, `4.2s` -> `4.2s`.
pub fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// A wait in words a user reads at a glance: `850ms`, `12s`, `3m05s`, `2h10m`.
pub fn fmt_wait(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_formatting() {
        assert_eq!(fmt_wait(Duration::from_millis(850)), "850ms");
        assert_eq!(fmt_wait(Duration::from_secs(12)), "12s");
        assert_eq!(fmt_wait(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_wait(Duration::from_secs(7800)), "2h10m");
        assert_eq!(fmt_elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(fmt_elapsed(Duration::from_secs(75)), "1m15s");
    }
}
