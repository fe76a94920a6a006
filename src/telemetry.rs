//! Logging setup: `tracing` to stderr, human-readable or JSON, with the
//! filter from `--log`, else `CAMGATE_LOG`, else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// hickory logs every DNS query at INFO: the sinkhole counts queries in
/// metrics instead, so its crates log warnings only unless the filter names
/// them.
fn with_quiet_deps(spec: &str) -> String {
    if spec.contains("hickory") {
        spec.to_string()
    } else {
        format!(
            "{spec},hickory_server=warn,hickory_proto=warn,hickory_resolver=warn,hickory_net=warn"
        )
    }
}

/// Installs the global subscriber. Returns an error message for a bad filter.
pub fn init(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    let spec = filter
        .map(str::to_string)
        .or_else(|| std::env::var("CAMGATE_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(with_quiet_deps(&spec))
        .map_err(|e| format!("bad log filter {spec:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_quiet_unless_named() {
        assert!(with_quiet_deps("info").contains("hickory_server=warn"));
        assert_eq!(
            with_quiet_deps("info,hickory_server=debug"),
            "info,hickory_server=debug"
        );
        assert!(EnvFilter::try_new(with_quiet_deps("warn,camgate::app=info")).is_ok());
    }
}
