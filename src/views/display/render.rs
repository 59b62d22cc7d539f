//! Draws a [`DisplayState`] into a ratatui frame: a header, one panel per agent, a quota strip
//! per scope and a footer with notes, the winner and the end of the run. Pure: the same state
//! gives the same frame, so tests render into ratatui's test backend.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::state::{AgentPanel, DisplayState, ScopeStrip};
use crate::views::{fmt_elapsed, fmt_wait};

/// Narrowest agent panel before panels wrap onto another row.
const PANEL_MIN_WIDTH: u16 = 30;
/// Rows of one agent panel, borders included: at least, and at most when there is room.
const PANEL_MIN_HEIGHT: u16 = 8;
const PANEL_MAX_HEIGHT: u16 = 12;

/// Draws `state` over the whole frame: the header, the agents' panels (as tall as the room
/// left allows, within bounds), the quota strips and the run's notes, each as tall as its
/// content.
pub fn render(frame: &mut Frame, state: &DisplayState) {
    let area = frame.area();
    let per_row = usize::from((area.width / PANEL_MIN_WIDTH).max(1))
        .min(state.agents.len())
        .max(1);
    let agent_rows = u16::try_from(state.agents.len().div_ceil(per_row).max(1)).unwrap_or(1);
    let quota_height = quota_lines(state).saturating_add(2);
    let footer = footer_text(state);
    let footer_height = footer_rows(&footer, area).saturating_add(2);
    let room = area
        .height
        .saturating_sub(1)
        .saturating_sub(quota_height)
        .saturating_sub(footer_height);
    let panel_height = (room / agent_rows).clamp(PANEL_MIN_HEIGHT, PANEL_MAX_HEIGHT);
    let [header, agents, quota, footer_area, _] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(panel_height.saturating_mul(agent_rows)),
        Constraint::Length(quota_height),
        Constraint::Length(footer_height),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_line(state)), header);
    render_agents(frame, agents, state, per_row, panel_height);
    render_quota(frame, quota, state);
    render_footer(frame, footer_area, footer);
}

fn header_line(state: &DisplayState) -> Line<'static> {
    let elapsed = match &state.finished {
        Some((_, took)) => fmt_elapsed(*took),
        None => fmt_elapsed(state.now.saturating_duration_since(state.started)),
    };
    let mut spans = vec![
        Span::styled("massgen-rs", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  elapsed {elapsed}  ")),
    ];
    if state.interrupted && state.finished.is_none() {
        spans.push(Span::styled(
            "interrupted: stopping (Ctrl-C again quits at once)  ",
            Style::new().fg(Color::Yellow),
        ));
    }
    spans.push(Span::styled(
        one_line(&state.question),
        Style::new().add_modifier(Modifier::ITALIC),
    ));
    Line::from(spans)
}

fn render_agents(
    frame: &mut Frame,
    area: Rect,
    state: &DisplayState,
    per_row: usize,
    panel_height: u16,
) {
    let rows = usize::from(area.height / panel_height.max(1));
    let rows = Layout::vertical(vec![Constraint::Length(panel_height); rows]).split(area);
    let share = u32::try_from(per_row).unwrap_or(1);
    for (row, chunk) in rows.iter().zip(state.agents.chunks(per_row)) {
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, share); per_row]).split(*row);
        for (cell, panel) in cells.iter().zip(chunk) {
            render_panel(frame, *cell, state, panel);
        }
    }
}

fn state_style(state: &str) -> Style {
    let color = match state {
        "thinking" | "presenting" => Color::Cyan,
        "waiting for quota" | "waiting for a model" => Color::Yellow,
        "answered" | "voted" | "done" => Color::Green,
        "failed" => Color::Red,
        _ => Color::Gray,
    };
    Style::new().fg(color).add_modifier(Modifier::BOLD)
}

fn render_panel(frame: &mut Frame, area: Rect, state: &DisplayState, panel: &AgentPanel) {
    let winner = state.winner.as_ref().is_some_and(|(w, _)| *w == panel.id);
    let model = panel
        .model
        .as_deref()
        .map_or_else(String::new, |m| format!("· {m} "));
    let title = if winner {
        format!(" {} ★ winner {model}", panel.id)
    } else {
        format!(" {} {model}", panel.id)
    };
    let border = if winner {
        Style::new().fg(Color::Green)
    } else {
        Style::new()
    };
    let block = Block::bordered().title(title).border_style(border);
    let mut lines = vec![Line::from(Span::styled(
        panel.state.clone(),
        state_style(&panel.state),
    ))];
    if !panel.detail.is_empty() {
        lines.push(Line::raw(panel.detail.clone()));
    }
    if let Some(until) = panel.wait_until {
        lines.push(Line::raw(format!("ETA {}", fmt_wait(state.left(until)))));
    }
    let cast = panel
        .voted_for
        .as_deref()
        .map_or_else(|| "-".to_owned(), |v| format!("-> {v}"));
    lines.push(Line::raw(format!(
        "votes: cast {cast} · received {}",
        state.votes_for(&panel.id)
    )));
    match &panel.answer_label {
        Some(label) => {
            lines.push(Line::from(Span::styled(
                format!("answer {label} ({} so far):", panel.answers),
                Style::new().add_modifier(Modifier::DIM),
            )));
            lines.push(Line::raw(one_line(&panel.answer_preview)));
        }
        None => lines.push(Line::from(Span::styled(
            "no answer yet",
            Style::new().add_modifier(Modifier::DIM),
        ))),
    }
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}

/// Rows the quota strips need inside their block.
fn quota_lines(state: &DisplayState) -> u16 {
    if state.scopes.is_empty() {
        return 1;
    }
    let rows: usize = state.scopes.iter().map(|s| 1 + s.limits.len()).sum();
    u16::try_from(rows).unwrap_or(u16::MAX)
}

fn render_quota(frame: &mut Frame, area: Rect, state: &DisplayState) {
    let block = Block::bordered().title(" quota ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if state.scopes.is_empty() {
        let text = if state.rate_limit {
            "no scope registered yet"
        } else {
            "rate limiting is off: calls do not wait for quota"
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    }
    let mut y = inner.y;
    let bottom = inner.y.saturating_add(inner.height);
    for scope in &state.scopes {
        if y >= bottom {
            break;
        }
        let row = Rect::new(inner.x, y, inner.width, 1);
        frame.render_widget(Paragraph::new(scope_line(state, scope)), row);
        y += 1;
        for gauge in &scope.limits {
            if y >= bottom {
                break;
            }
            let row = Rect::new(
                inner.x.saturating_add(2),
                y,
                inner.width.saturating_sub(2),
                1,
            );
            let ratio = if gauge.limit == 0 {
                0.0
            } else {
                (gauge.used as f64 / gauge.limit as f64).clamp(0.0, 1.0)
            };
            let color = if ratio >= 1.0 {
                Color::Red
            } else if ratio >= 0.8 {
                Color::Yellow
            } else {
                Color::Green
            };
            let learned = if gauge.learned { " (learned)" } else { "" };
            let label = format!("{} {}/{}{learned}", gauge.name, gauge.used, gauge.limit);
            frame.render_widget(
                Paragraph::new(gauge_line(&label, ratio, row.width, color)),
                row,
            );
            y += 1;
        }
    }
}

/// Width of a gauge's label column.
const GAUGE_LABEL: usize = 24;

/// `rpm 3/5               ██████████░░░░░░░` in `width` cells: the label, then a bar filled in
/// proportion to `ratio` (drawn with different characters, so it reads without colours too).
fn gauge_line(label: &str, ratio: f64, width: u16, color: Color) -> Line<'static> {
    let label = format!("{label:<GAUGE_LABEL$} ");
    let bar = usize::from(width).saturating_sub(label.chars().count());
    // Rounded down, so a bar is full only when the limit is.
    let filled = ((bar as f64) * ratio.clamp(0.0, 1.0)).floor() as usize;
    Line::from(vec![
        Span::raw(label),
        Span::styled("█".repeat(filled.min(bar)), Style::new().fg(color)),
        Span::styled(
            "░".repeat(bar.saturating_sub(filled)),
            Style::new().fg(Color::DarkGray),
        ),
    ])
}

fn scope_line(state: &DisplayState, scope: &ScopeStrip) -> Line<'static> {
    let mut spans = vec![Span::styled(
        scope.name.clone(),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    spans.push(Span::raw(format!("  queue {}", scope.queue_depth)));
    match scope.concurrency {
        Some(cap) => spans.push(Span::raw(format!("  in flight {}/{cap}", scope.in_flight))),
        None => spans.push(Span::raw(format!("  in flight {}", scope.in_flight))),
    }
    if let Some((limit, until)) = &scope.blocking {
        let eta = until.map_or_else(
            || "ETA unknown".to_owned(),
            |u| format!("ETA {}", fmt_wait(state.left(u))),
        );
        spans.push(Span::styled(
            format!("  blocked by {limit}, {eta}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some((reason, until)) = &scope.cooldown {
        let text = match until {
            Some(u) if state.left(*u).is_zero() => None,
            Some(u) => Some(format!(
                "  cooldown ({reason}) {} left",
                fmt_wait(state.left(*u))
            )),
            None => Some(format!("  closed ({reason})")),
        };
        if let Some(text) = text {
            spans.push(Span::styled(text, Style::new().fg(Color::Magenta)));
        }
    }
    Line::from(spans)
}

/// The footer's lines: notes, the winner, the final answer, the end of the run.
fn footer_text(state: &DisplayState) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = state.notes.iter().map(|n| Line::raw(one_line(n))).collect();
    if let Some((winner, votes)) = &state.winner {
        lines.push(Line::from(Span::styled(
            format!("winner: {winner} with {votes} vote(s)"),
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        )));
    }
    if let Some((agent, chars)) = &state.final_answer {
        lines.push(Line::raw(format!(
            "final answer by {agent} ({chars} characters): printed below when the display closes"
        )));
    }
    if let Some((status, took)) = &state.finished {
        lines.push(Line::raw(format!("run {status} in {}", fmt_elapsed(*took))));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no winner yet",
            Style::new().add_modifier(Modifier::DIM),
        )));
    }
    lines
}

/// Rows the footer's lines take wrapped inside its borders, at most a quarter of the screen
/// (at least 3): a long note wraps instead of being cut.
fn footer_rows(footer: &[Line], area: Rect) -> u16 {
    let rows = wrapped_rows(footer, area.width.saturating_sub(2));
    rows.min((area.height / 4).max(3))
}

/// Rows `lines` take when wrapped at word boundaries into `width` columns (as the paragraph
/// wraps them, or a row more).
pub(super) fn wrapped_rows(lines: &[Line], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    let mut rows = 0usize;
    for line in lines {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        let mut row = 0usize;
        let mut taken = 1usize;
        for word in text.split_whitespace() {
            let w = word.chars().count();
            if row == 0 {
                row = w;
            } else if row + 1 + w <= width {
                row += 1 + w;
                continue;
            } else {
                taken += 1;
                row = w;
            }
            // A word longer than the row is broken across rows.
            while row > width {
                taken += 1;
                row -= width;
            }
        }
        rows += taken;
    }
    u16::try_from(rows).unwrap_or(u16::MAX)
}

fn render_footer(frame: &mut Frame, area: Rect, text: Vec<Line<'static>>) {
    // When the notes need more rows than the footer has, the latest ones are shown.
    let rows = wrapped_rows(&text, area.width.saturating_sub(2));
    let scroll = rows.saturating_sub(area.height.saturating_sub(2));
    frame.render_widget(
        Paragraph::new(text)
            .block(Block::bordered().title(" run "))
            .wrap(Wrap { trim: true })
            .scroll((scroll, 0)),
        area,
    );
}

/// `text` on one line: line breaks become spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
