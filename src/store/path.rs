//! The per-user state path.

use std::path::PathBuf;

/// `$XDG_STATE_HOME/massgen-rs/state.db`, else `~/.local/state/massgen-rs/state.db`; `None`
/// when neither variable gives an absolute directory.
pub fn default_state_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local").join("state"))
        })?;
    Some(base.join("massgen-rs").join("state.db"))
}
