#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::text::Line;

use super::state::limit_name;
use super::*;
use crate::quota::{LimitUsage, ScopeSnapshot};
use crate::runtime::AgentState;
use crate::supervisor::QuotaEvent;

/// The frame `state` draws on a `width` x `height` terminal, one string per row.
fn draw(state: &DisplayState, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, state)).unwrap();
    let buffer = terminal.backend().buffer();
    buffer
        .content
        .chunks(usize::from(buffer.area.width))
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect()
}

fn screen(rows: &[String]) -> String {
    rows.join("\n")
}

fn agents() -> Vec<String> {
    vec!["researcher".into(), "critic".into(), "summarizer".into()]
}

fn state_event(agent: &str, state: AgentState) -> RunEvent {
    RunEvent::AgentState {
        agent: agent.into(),
        state,
    }
}

fn limit(dimension: &'static str, period_secs: f64, used: u64, limit: u64) -> LimitUsage {
    LimitUsage {
        dimension,
        period_secs,
        limit,
        configured_limit: limit,
        learned: false,
        used,
        utilization: used as f64 / limit as f64,
    }
}

fn snapshot(queue_depth: usize, cooldown_ms: Option<u64>) -> QuotaSnapshot {
    QuotaSnapshot {
        scopes: vec![ScopeSnapshot {
            scope: "gemini/gemini-2.5-flash".into(),
            limits: vec![
                limit("requests", 60.0, 3, 5),
                limit("tokens", 60.0, 1200, 240_000),
                limit("requests", 8.0, 2, 2),
            ],
            in_flight: 1,
            concurrency: Some(2),
            queue_depth,
            cooldown_remaining_ms: cooldown_ms,
            cooldown_reason: cooldown_ms.map(|_| "startup".to_owned()),
            granted_total: 3,
            denied_total: 0,
        }],
    }
}

/// Three agents mid-run: one waiting for quota, one answered, one voted.
fn mid_run(t0: Instant) -> DisplayState {
    let mut s = DisplayState::new("What is the capital of France?", &agents(), t0);
    s.apply(
        &state_event(
            "researcher",
            AgentState::WaitingQuota {
                scope: "gemini/gemini-2.5-flash".into(),
                limit: Some("rpm".into()),
                eta_ms: 12_000,
            },
        ),
        t0,
    );
    s.apply(
        &RunEvent::NewAnswer {
            agent: "critic".into(),
            label: "agent1.1".into(),
            preview: "Paris is the capital\nof France.".into(),
            path: None,
        },
        t0,
    );
    s.apply(
        &state_event(
            "critic",
            AgentState::Answered {
                label: "agent1.1".into(),
            },
        ),
        t0,
    );
    s.apply(
        &RunEvent::Vote {
            agent: "summarizer".into(),
            for_agent: "critic".into(),
            reason: "clear".into(),
        },
        t0,
    );
    s.apply(
        &RunEvent::Quota {
            quota: QuotaEvent::Waiting {
                requester: "researcher".into(),
                scope: "gemini/gemini-2.5-flash".into(),
                limit: Some("rpm".into()),
                eta_ms: Some(12_000),
                queue_depth: 1,
            },
        },
        t0,
    );
    s.apply_snapshot(&snapshot(1, Some(3_000)), t0);
    s
}

#[test]
fn agent_panels_show_state_answer_and_votes() {
    let t0 = Instant::now();
    let text = screen(&draw(&mid_run(t0), 120, 40));
    for agent in agents() {
        assert!(text.contains(&format!(" {agent} ")), "{agent}:\n{text}");
    }
    assert!(text.contains("waiting for quota"), "{text}");
    assert!(text.contains("gemini/gemini-2.5-flash rpm"), "{text}");
    assert!(text.contains("answer agent1.1 (1 so far):"), "{text}");
    // The preview is shown on one line.
    assert!(text.contains("Paris is the capital of France."), "{text}");
    assert!(
        text.contains("votes: cast -> critic · received 0"),
        "{text}"
    );
    assert!(text.contains("votes: cast - · received 1"), "{text}");
    assert!(text.contains("no answer yet"), "{text}");
}

#[test]
fn quota_strip_shows_gauges_queue_blocker_and_cooldown() {
    let t0 = Instant::now();
    let text = screen(&draw(&mid_run(t0), 120, 40));
    assert!(text.contains("rpm 3/5"), "{text}");
    assert!(text.contains("tpm 1200/240000"), "{text}");
    assert!(text.contains("requests/8s 2/2"), "{text}");
    assert!(text.contains("queue 1"), "{text}");
    assert!(text.contains("in flight 1/2"), "{text}");
    assert!(text.contains("blocked by rpm, ETA 12s"), "{text}");
    assert!(text.contains("cooldown (startup) 3s left"), "{text}");
    // The gauges are drawn: a full limit fills its line, an unused one does not.
    let full = text
        .lines()
        .find(|l| l.contains("requests/8s 2/2"))
        .unwrap();
    let empty = text
        .lines()
        .find(|l| l.contains("tpm 1200/240000"))
        .unwrap();
    let count = |l: &str, ch: char| l.chars().filter(|c| *c == ch).count();
    assert!(count(full, '█') > 60, "{full}");
    assert_eq!(count(full, '░'), 0, "{full}");
    assert_eq!(
        count(empty, '█'),
        0,
        "1200 of 240000 is less than a cell: {empty}"
    );
    // 3 of 5: three fifths of the bar, rounded down.
    let rpm = text.lines().find(|l| l.contains("rpm 3/5")).unwrap();
    let (on, off) = (count(rpm, '█'), count(rpm, '░'));
    assert_eq!(on, (on + off) * 3 / 5, "{rpm}");
}

#[test]
fn etas_and_cooldowns_count_down_between_events() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    s.tick(t0 + Duration::from_secs(5));
    let text = screen(&draw(&s, 120, 40));
    assert!(text.contains("blocked by rpm, ETA 7s"), "{text}");
    assert!(text.contains("ETA 7s"), "{text}");
    // The 3 s cooldown is over: no longer shown.
    assert!(!text.contains("cooldown ("), "{text}");
    assert!(text.contains("elapsed 5.0s"), "{text}");
    // Once nothing waits, the blocker goes.
    s.apply_snapshot(&snapshot(0, None), t0 + Duration::from_secs(13));
    let text = screen(&draw(&s, 120, 40));
    assert!(!text.contains("blocked by"), "{text}");
    assert!(text.contains("queue 0"), "{text}");
}

#[test]
fn a_closed_scope_says_so() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    s.apply(
        &RunEvent::Quota {
            quota: QuotaEvent::CooldownStarted {
                scope: "openai/gpt-4o".into(),
                reason: "spend cap reached".into(),
                duration_ms: u64::MAX,
            },
        },
        t0,
    );
    let text = screen(&draw(&s, 120, 40));
    assert!(text.contains("openai/gpt-4o"), "{text}");
    assert!(text.contains("closed (spend cap reached)"), "{text}");
}

#[test]
fn winner_and_end_of_run_are_shown() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    for e in [
        RunEvent::WinnerSelected {
            agent: "critic".into(),
            votes: 2,
            by: "votes".into(),
        },
        RunEvent::FinalAnswer {
            agent: "critic".into(),
            presented: true,
            chars: 321,
        },
        RunEvent::RunFinished {
            status: "completed".into(),
            winner: Some("critic".into()),
            duration_ms: 8_600,
        },
    ] {
        s.apply(&e, t0);
    }
    let text = screen(&draw(&s, 120, 40));
    assert!(text.contains("critic ★ winner"), "{text}");
    assert!(text.contains("winner: critic with 2 vote(s)"), "{text}");
    assert!(
        text.contains("final answer by critic (321 characters)"),
        "{text}"
    );
    assert!(text.contains("run completed in 8.6s"), "{text}");
    let summary = summary(&s);
    assert!(
        summary.contains("winner: critic with 2 vote(s)"),
        "{summary}"
    );
    assert!(summary.contains("critic"), "{summary}");
    assert!(summary.contains("run completed in 8.6s"), "{summary}");
}

#[test]
fn discarded_votes_no_longer_count() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    assert_eq!(s.votes_for("critic"), 1);
    s.apply(
        &RunEvent::VotesDiscarded {
            agents: vec!["summarizer".into()],
            reason: "new_answer".into(),
        },
        t0,
    );
    assert_eq!(s.votes_for("critic"), 0);
    let text = screen(&draw(&s, 120, 40));
    assert!(!text.contains("cast -> critic"), "{text}");
}

#[test]
fn rate_limiting_off_is_said_in_the_strip() {
    let t0 = Instant::now();
    let s = DisplayState::new("q", &agents(), t0);
    let text = screen(&draw(&s, 100, 30));
    assert!(text.contains("rate limiting is off"), "{text}");
}

#[test]
fn tiny_and_crowded_terminals_do_not_panic() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    for i in 0..12 {
        s.apply(&state_event(&format!("extra{i}"), AgentState::Thinking), t0);
    }
    for (w, h) in [(1, 1), (10, 5), (40, 8), (200, 60)] {
        draw(&s, w, h);
    }
}

/// A long note wraps in full instead of being cut at the footer's one row; with more notes
/// than the footer holds, the latest show.
#[test]
fn long_notes_wrap_and_the_latest_show_when_room_is_short() {
    let t0 = Instant::now();
    let mut s = mid_run(t0);
    let long = "researcher: attempt 1 failed (provider call failed: RateLimited (HTTP 429): \
                simulated 429: sim-small allows 2 requests per minute); trying again";
    s.note(long.to_owned());
    let text = screen(&draw(&s, 80, 40));
    assert!(text.contains("trying again"), "{text}");
    assert!(text.contains("sim-small allows 2"), "{text}");
    assert!(text.contains("researcher: attempt 1 failed"), "{text}");

    // On a short terminal the footer is capped (30 rows: 7 at most) and scrolled: all four
    // notes are kept, the newest is on screen, the oldest is not.
    for i in 1..=2 {
        s.note(format!("note {i}: {}", "word ".repeat(30)));
    }
    s.note("the newest note".to_owned());
    assert_eq!(s.notes.len(), 4);
    let text = screen(&draw(&s, 80, 30));
    assert!(text.contains("the newest note"), "{text}");
    assert!(!text.contains("researcher: attempt 1 failed"), "{text}");
}

#[test]
fn wrapped_rows_counts_like_word_wrap() {
    let rows =
        |text: &str, width: u16| super::render::wrapped_rows(&[Line::raw(text.to_owned())], width);
    assert_eq!(rows("", 10), 1);
    assert_eq!(rows("one two", 10), 1);
    assert_eq!(rows("one two three", 10), 2);
    assert_eq!(rows("abcdefghijklmnopqrstuvwxy", 10), 3);
    assert_eq!(rows("a b", 0), 2);
}

#[test]
fn limit_names() {
    assert_eq!(limit_name("requests", 60.0), "rpm");
    assert_eq!(limit_name("tokens", 86_400.0), "tpd");
    assert_eq!(limit_name("input_tokens", 60.0), "itpm");
    assert_eq!(limit_name("output_tokens", 60.0), "otpm");
    assert_eq!(limit_name("requests", 8.0), "requests/8s");
    assert_eq!(limit_name("tokens", 3600.0), "tokens/1h");
}

#[test]
fn pooled_agents_show_their_model_and_pool_waits() {
    let t0 = Instant::now();
    let mut s = DisplayState::new("q", &agents(), t0);
    s.apply(
        &RunEvent::ModelSelected {
            agent: "critic".into(),
            pool: "fast".into(),
            provider: "simulated".into(),
            model: "sim-medium".into(),
        },
        t0,
    );
    // A pool resting its models by itself (no supervisor).
    s.apply(
        &RunEvent::NoModelAvailable {
            agent: "summarizer".into(),
            pool: "fast".into(),
            eta_ms: Some(4_000),
        },
        t0,
    );
    let text = screen(&draw(&s, 120, 40));
    assert!(text.contains(" critic · simulated/sim-medium "), "{text}");
    assert!(text.contains("waiting for a model"), "{text}");
    assert!(text.contains("no model of pool fast available"), "{text}");
    assert!(text.contains("ETA 4s"), "{text}");
    // Under a supervisor its own wait says more, and stays.
    s.apply(
        &state_event(
            "summarizer",
            AgentState::WaitingQuota {
                scope: "simulated/sim-small".into(),
                limit: Some("rpm".into()),
                eta_ms: 9_000,
            },
        ),
        t0,
    );
    s.apply(
        &RunEvent::NoModelAvailable {
            agent: "summarizer".into(),
            pool: "fast".into(),
            eta_ms: Some(9_000),
        },
        t0,
    );
    let text = screen(&draw(&s, 120, 40));
    assert!(text.contains("simulated/sim-small rpm"), "{text}");
    assert!(!text.contains("waiting for a model"), "{text}");
}

/// A panic anywhere gives the terminal back first, then runs the hook that was in place (here
/// one that notes it ran, then prints as usual).
#[test]
fn a_panic_gives_the_terminal_back_then_runs_the_previous_hook() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static CHAINED: AtomicBool = AtomicBool::new(false);
    static SAW_RESTORED: AtomicBool = AtomicBool::new(false);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        CHAINED.store(true, Ordering::SeqCst);
        // The terminal was given back before this hook ran.
        SAW_RESTORED.store(!term::is_active(), Ordering::SeqCst);
        default(info);
    }));
    term::install_panic_hook();
    term::set_active(true);
    let result = std::panic::catch_unwind(|| panic!("a bug while the display is up"));
    assert!(result.is_err());
    assert!(!term::is_active(), "the terminal was given back");
    assert!(CHAINED.load(Ordering::SeqCst), "the previous hook ran");
    assert!(
        SAW_RESTORED.load(Ordering::SeqCst),
        "restored before the previous hook"
    );
    // Restoring again is harmless.
    restore();
    assert!(!term::is_active());
}
