//! Logging: readable lines locally, one JSON object a line with `PARLEY_LOG_FORMAT=json`.
//! Always to stderr, so a command's output on stdout stays clean.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `default_filter` applies when `filter` is `None`.
pub fn init(format: LogFormat, filter: Option<&str>, default_filter: &str) {
    // sqlx logs every statement at info; that is noise, and statements can be long.
    let directives = filter.unwrap_or(default_filter);
    let filter = EnvFilter::try_new(directives)
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
        .add_directive("sqlx=warn".parse().expect("static directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.with_target(false).compact().try_init(),
    };
}
