//! One subscriber factory for every command.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Installs the global subscriber, logging to stderr; a second call is a
/// no-op (tests).
pub fn init(filter: &str, format: LogFormat) {
    init_with_writer(filter, format, std::io::stderr);
}

/// [`init`] with another writer (benchmarks log to a sink).
///
/// `filter` is read as `RUST_LOG`. Plain `target=level` lists (the usual
/// case) become a [`Targets`] filter; only directives that need
/// `EnvFilter` (span or field filters, `[...]` or `{...}`) get one:
/// `EnvFilter` takes a lock on every span enter and exit, which every
/// request pays for several times.
pub fn init_with_writer<W>(filter: &str, format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let plain = !filter.contains(['[', '{']);
    match filter.parse::<Targets>() {
        Ok(targets) if plain => install(targets, format, writer),
        _ => install(
            EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")),
            format,
            writer,
        ),
    }
}

fn install<F, W>(filter: F, format: LogFormat, writer: W)
where
    F: Layer<Registry> + Send + Sync + 'static,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    let _ = match format {
        // The current span (the request's: request_id, route, user and
        // session ids) is enough; the full span list would repeat it.
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_span_list(false))
            .try_init(),
        LogFormat::Pretty => registry.with(layer).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_filters_parse_as_targets_and_span_filters_do_not() {
        assert!("info".parse::<Targets>().is_ok());
        assert!("warn,web::middleware=debug,tokenwarden=info"
            .parse::<Targets>()
            .is_ok());
        assert!(EnvFilter::try_new("info,[request{route=/auth/refresh}]=debug").is_ok());
    }
}
