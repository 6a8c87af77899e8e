//! Process-wide logging: a tracing subscriber writing to stderr (stdout belongs to CLI
//! verbs' output), as text for people or JSON for log pipelines, and a panic hook that
//! reports panics through it.

use std::panic::PanicHookInfo;

use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is not valid `EnvFilter` syntax (e.g. `info,trustgate=debug`).
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The rejected filter.
        filter: String,
        /// What is wrong with it.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

/// Installs the global subscriber with `filter` (`EnvFilter` syntax, e.g. `info` or
/// `info,trustgate::server=debug`), writing JSON lines if `json`, and routes panics through
/// it. Call once, early in `main`.
pub fn init_logging(json: bool, filter: &str) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    // Colour codes only for a terminal: in a file or a pipe they break `grep key=value`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|_| LoggingError::AlreadyInitialised)?;
    std::panic::set_hook(Box::new(log_panic));
    Ok(())
}

/// Logs a panic as one event. It runs on the panicking thread, so a handler panic is
/// logged inside its request's span, with the request id: the one log line for it (the
/// server's catch-panic layer only answers the client).
fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    // Honours RUST_BACKTRACE like the default hook does.
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => Some(backtrace.to_string()),
        _ => None,
    };
    tracing::error!(
        panic.message = message,
        panic.location = location.as_deref(),
        panic.backtrace = backtrace.as_deref(),
        "panic"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_are_refused_before_installing_anything() {
        let error = init_logging(false, "info,trustgate=loud");
        assert!(
            matches!(error, Err(LoggingError::Filter { ref filter, .. }) if filter == "info,trustgate=loud"),
            "{error:?}"
        );
    }
}
