//! Server settings from, in order of precedence: command-line flags, `HAPND_*` environment variables (both through
//! clap), an optional TOML file (`--config`), and the defaults below.

use crate::projections::EngineSettings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::Limits;
use crate::db::Durability;

pub const DEFAULT_DATA_DIR: &str = "./hapnd-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SHARDS: usize = 4;

/// The built C# programs' default place: the folder `dotnet-host` next to the hapnd binary (where
/// `dotnet build dotnet-host/Hapnd.slnx -c Release --artifacts-path target/release/dotnet-host` puts them for
/// `cargo run --release`, and where an install puts them beside `hapnd`).
pub fn default_dotnet_host() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().unwrap_or(Path::new("/")).join("dotnet-host")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `hapnd serve` flags; every one is optional so that the file and the defaults can fill the gaps.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (snake_case keys)
    #[arg(long, env = "HAPND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the catalog, shards and keys live [default: ./hapnd-data]
    #[arg(long, env = "HAPND_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "HAPND_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// full: an acknowledged append survives power loss; normal: survives a crash of hapnd only [default: full]
    #[arg(long, env = "HAPND_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// Number of shard files, fixed when the data dir is created [default: 4]
    #[arg(long, env = "HAPND_SHARDS")]
    pub shards: Option<usize>,
    /// Largest event (data + metadata) in bytes [default: 1048576]
    #[arg(long, env = "HAPND_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// Most events in one append request [default: 1000]
    #[arg(long, env = "HAPND_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Largest request body in bytes [default: 16777216]
    #[arg(long, env = "HAPND_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Log format on stderr [default: text]
    #[arg(long, env = "HAPND_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// The artifact signing key (32 secret bytes, mode 0600); default: created in the data dir on first start
    #[arg(long, env = "HAPND_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// The built C# programs (the --artifacts-path of a Release build of dotnet-host/Hapnd.slnx); without them,
    /// uploads are refused [default: the folder dotnet-host next to hapnd, when it holds a build]
    #[arg(long, env = "HAPND_DOTNET_HOST")]
    pub dotnet_host: Option<PathBuf>,
    /// Events a projection reads from the log and runs in one batch [default: 4000]
    #[arg(long, env = "HAPND_PROJECTION_BATCH_EVENTS")]
    pub projection_batch_events: Option<u32>,
    /// While catching up, a projection commits its states and checkpoint after this many events (or a second)
    /// [default: 100000]
    #[arg(long, env = "HAPND_PROJECTION_FLUSH_EVENTS")]
    pub projection_flush_events: Option<u64>,
    /// State changes kept per projection in its change log (for notifications) [default: 100000]
    #[arg(long, env = "HAPND_PROJECTION_CHANGES_KEPT")]
    pub projection_changes_kept: Option<u64>,
}

/// The contents of a `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    durability: Option<Durability>,
    shards: Option<usize>,
    max_event_bytes: Option<usize>,
    max_batch_events: Option<usize>,
    max_request_bytes: Option<usize>,
    log_format: Option<LogFormat>,
    signing_key: Option<PathBuf>,
    dotnet_host: Option<PathBuf>,
    projection_batch_events: Option<u32>,
    projection_flush_events: Option<u64>,
    projection_changes_kept: Option<u64>,
}

/// The settings `hapnd serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub durability: Durability,
    pub shards: usize,
    pub limits: Limits,
    pub log_format: LogFormat,
    /// Where the artifact signing key is read (or, at the default place, created).
    pub signing_key: PathBuf,
    /// The built C# programs.
    pub dotnet_host: PathBuf,
    /// Whether `dotnet_host` was configured (then it must work) rather than the default (used when present).
    pub dotnet_host_required: bool,
    pub projections: EngineSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parse config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Limits::default();
        let config = ServeConfig {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen: args.listen.or(file.listen).unwrap_or_else(default_listen),
            durability: args.durability.or(file.durability).unwrap_or_default(),
            shards: args.shards.or(file.shards).unwrap_or(DEFAULT_SHARDS),
            limits: Limits {
                max_event_bytes: args
                    .max_event_bytes
                    .or(file.max_event_bytes)
                    .unwrap_or(defaults.max_event_bytes),
                max_batch_events: args
                    .max_batch_events
                    .or(file.max_batch_events)
                    .unwrap_or(defaults.max_batch_events),
                max_request_bytes: args
                    .max_request_bytes
                    .or(file.max_request_bytes)
                    .unwrap_or(defaults.max_request_bytes),
            },
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            signing_key: PathBuf::new(),
            dotnet_host_required: args.dotnet_host.is_some() || file.dotnet_host.is_some(),
            dotnet_host: args
                .dotnet_host
                .or(file.dotnet_host)
                .unwrap_or_else(default_dotnet_host),
            projections: {
                let defaults = EngineSettings::default();
                EngineSettings {
                    batch_events: args
                        .projection_batch_events
                        .or(file.projection_batch_events)
                        .unwrap_or(defaults.batch_events),
                    flush_events: args
                        .projection_flush_events
                        .or(file.projection_flush_events)
                        .unwrap_or(defaults.flush_events),
                    changes_kept: args
                        .projection_changes_kept
                        .or(file.projection_changes_kept)
                        .unwrap_or(defaults.changes_kept),
                    ..defaults
                }
            },
        };
        let signing_key = args
            .signing_key
            .or(file.signing_key)
            .unwrap_or_else(|| crate::signing_key::default_path(&config.data_dir));
        let config = ServeConfig { signing_key, ..config };
        for (value, name) in [
            (config.shards, "shards"),
            (config.limits.max_event_bytes, "max_event_bytes"),
            (config.limits.max_batch_events, "max_batch_events"),
            (config.limits.max_request_bytes, "max_request_bytes"),
            (config.projections.batch_events as usize, "projection_batch_events"),
            (config.projections.flush_events as usize, "projection_flush_events"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(config)
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("the default listen address is valid")
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hapnd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nshards = 2\ndurability = \"normal\"\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(path),
            shards: Some(8),
            ..ServeArgs::default()
        };
        let config = ServeConfig::resolve(args).expect("resolve");
        assert_eq!(config.shards, 8);
        assert_eq!(config.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(config.durability, Durability::Normal);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.limits.max_batch_events, 1000);
    }

    #[test]
    fn unknown_keys_and_zero_limits_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hapnd.toml");
        std::fs::write(&path, "listn = \"x\"\n").expect("write");
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(ServeConfig::resolve(args), Err(ConfigError::Parse { .. })));
        let args = ServeArgs {
            shards: Some(0),
            ..ServeArgs::default()
        };
        assert!(matches!(ServeConfig::resolve(args), Err(ConfigError::Zero("shards"))));
    }
}
