//! The library entry point: [`Runtime`] runs a team on a question and streams events.
