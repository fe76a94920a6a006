//! Command-line interface (see `contract.md`: commands, flags, exit codes).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The default configuration file, relative to the working directory.
pub const DEFAULT_CONFIG: &str = "config/camgate.toml";

/// camgate: quarantine gateway for legacy IP cameras.
#[derive(Debug, Parser)]
#[command(name = "camgate", version, about)]
pub struct Cli {
    /// Log filter in RUST_LOG syntax (else CAMGATE_LOG, else RUST_LOG, else info).
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log format: human (default) or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file.
        #[arg(long, env = "CAMGATE_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file: print every problem with its key path
    /// and a summary; exit 1 on any error.
    Check {
        /// Configuration file.
        #[arg(long, env = "CAMGATE_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print the removal inventory: every device with its configured and
    /// detected vendor, model, firmware, deadline, stream facts and blocked
    /// egress, sorted by deadline. Reads a running camgate's admin API, or
    /// probes the cameras itself when none answers.
    Inventory {
        /// Configuration file.
        #[arg(long, env = "CAMGATE_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = crate::inventory::Format::Table)]
        format: crate::inventory::Format,
    },
    /// Print the nftables ruleset that confines the configured cameras
    /// (apply with `nft -f`); exit 1 on an invalid configuration.
    Nft {
        /// Configuration file.
        #[arg(long, env = "CAMGATE_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}
