//! `haltway serve`'s settings: flags, then environment variables (`HALTWAY_*`), then an
//! optional TOML file (`--config`), then defaults; the first that gives a value wins.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use haltway_core::Retention;
use haltway_http::RateLimit;
use haltway_profiles::Product;
use haltway_sqlite::Synchronous;
use haltway_webhooks::{DeliveryConfig, TargetPolicy};
use serde::Deserialize;

/// Flags of `haltway serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "HALTWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "HALTWAY_LISTEN")]
    pub listen: Option<String>,
    /// SQLite database file [default: ./haltway.db].
    #[arg(long, env = "HALTWAY_DATABASE")]
    pub database: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://…) instead of SQLite, for several nodes on one database.
    #[arg(long, env = "HALTWAY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema for haltway's tables [default: haltway].
    #[arg(long, env = "HALTWAY_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// SQLite `synchronous`: `normal` survives a process crash, `full` also a power loss
    /// [default: normal].
    #[arg(long, env = "HALTWAY_SYNCHRONOUS")]
    pub synchronous: Option<String>,
    /// API key file [default: the database file with `.keys.json`, or ./haltway.keys.json].
    #[arg(long, env = "HALTWAY_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// Jobs running at once on this node [default: 1000].
    #[arg(long, env = "HALTWAY_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Requests per second per tenant (429 above) [default: no limit].
    #[arg(long, env = "HALTWAY_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// Burst of the rate limit [default: twice the rate].
    #[arg(long, env = "HALTWAY_RATE_BURST")]
    pub rate_burst: Option<f64>,
    /// Active jobs per tenant (429 above) [default: no limit].
    #[arg(long, env = "HALTWAY_MAX_ACTIVE_JOBS")]
    pub max_active_jobs: Option<u64>,
    /// Running jobs per tenant, across every node (give each node the same value): a
    /// tenant's further jobs wait in the queue while others' run [default: no limit].
    #[arg(long, env = "HALTWAY_MAX_RUNNING_PER_TENANT")]
    pub max_running_per_tenant: Option<u32>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "HALTWAY_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Do not register the `demo.find_all` job kind (and so mount no product profile).
    #[arg(long, env = "HALTWAY_NO_DEMO")]
    pub no_demo: bool,
    /// Product profiles to mount, comma-separated (`parallel,exa,scout,openfunnel,clado`),
    /// `all` or `none` [default: all].
    #[arg(long, env = "HALTWAY_PROFILES")]
    pub profiles: Option<String>,
    /// Milliseconds the demo kind takes per candidate when a profile starts it [default: 150].
    #[arg(long, env = "HALTWAY_DEMO_LATENCY_MS")]
    pub demo_latency_ms: Option<u64>,
    /// Do not serve the web dashboard at `/ui`.
    #[arg(long, env = "HALTWAY_NO_UI")]
    pub no_ui: bool,
    /// The file of the key that seals webhook secrets, created on first start [default: the
    /// database file with `.webhook-key`, or ./haltway.webhook-key]. Every node of one
    /// PostgreSQL database needs the same key.
    #[arg(long, env = "HALTWAY_WEBHOOK_KEY_FILE")]
    pub webhook_key_file: Option<PathBuf>,
    /// Allow webhook targets on loopback, private and link-local addresses (refused by
    /// default).
    #[arg(long, env = "HALTWAY_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Milliseconds before the first retry of a failed webhook delivery; each later one
    /// doubles it [default: 5000].
    #[arg(long, env = "HALTWAY_WEBHOOK_FIRST_RETRY_MS")]
    pub webhook_first_retry_ms: Option<u64>,
    /// Seconds after an event during which its delivery is retried [default: 172800].
    #[arg(long, env = "HALTWAY_WEBHOOK_WINDOW_S")]
    pub webhook_window_s: Option<u64>,
    /// Milliseconds one delivery attempt may take [default: 10000].
    #[arg(long, env = "HALTWAY_WEBHOOK_TIMEOUT_MS")]
    pub webhook_timeout_ms: Option<u64>,
    /// Seconds of failures after which a subscription is disabled [default: 432000].
    #[arg(long, env = "HALTWAY_WEBHOOK_DISABLE_AFTER_S")]
    pub webhook_disable_after_s: Option<u64>,
    /// Requests in flight to one webhook endpoint from this node [default: 4].
    #[arg(long, env = "HALTWAY_WEBHOOK_PER_ENDPOINT")]
    pub webhook_per_endpoint: Option<usize>,
    /// Send no webhooks from this node (the outbox is still written; other nodes send it).
    #[arg(long, env = "HALTWAY_NO_WEBHOOK_DELIVERY")]
    pub no_webhook_delivery: bool,
    /// How long completed jobs are kept, counted from when they finished: `90s`, `30m`,
    /// `12h`, `7d`, or `forever` [default: forever].
    #[arg(long, env = "HALTWAY_KEEP_COMPLETED")]
    pub keep_completed: Option<String>,
    /// How long failed jobs are kept (as `--keep-completed`) [default: forever].
    #[arg(long, env = "HALTWAY_KEEP_FAILED")]
    pub keep_failed: Option<String>,
    /// How long cancelled jobs are kept (as `--keep-completed`) [default: forever].
    #[arg(long, env = "HALTWAY_KEEP_CANCELLED")]
    pub keep_cancelled: Option<String>,
    /// Milliseconds between retention sweeps (and the store's housekeeping) [default: 60000].
    #[arg(long, env = "HALTWAY_SWEEP_INTERVAL_MS")]
    pub sweep_interval_ms: Option<u64>,
    /// Do not fire schedules from this node (others sharing the database do).
    #[arg(long, env = "HALTWAY_NO_SCHEDULES")]
    pub no_schedules: bool,
}

/// The TOML file: the same settings, by the same names (with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database: Option<PathBuf>,
    database_url: Option<String>,
    pg_schema: Option<String>,
    synchronous: Option<String>,
    keys_file: Option<PathBuf>,
    concurrency: Option<usize>,
    rate_limit: Option<f64>,
    rate_burst: Option<f64>,
    max_active_jobs: Option<u64>,
    max_running_per_tenant: Option<u32>,
    body_limit: Option<usize>,
    demo: Option<bool>,
    profiles: Option<String>,
    demo_latency_ms: Option<u64>,
    ui: Option<bool>,
    webhook_key_file: Option<PathBuf>,
    webhook_allow_private: Option<bool>,
    webhook_first_retry_ms: Option<u64>,
    webhook_window_s: Option<u64>,
    webhook_timeout_ms: Option<u64>,
    webhook_disable_after_s: Option<u64>,
    webhook_per_endpoint: Option<usize>,
    webhook_delivery: Option<bool>,
    keep_completed: Option<String>,
    keep_failed: Option<String>,
    keep_cancelled: Option<String>,
    sweep_interval_ms: Option<u64>,
    schedules: Option<bool>,
}

/// The settings after merging flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Listen address.
    pub listen: String,
    /// Where the jobs live.
    pub store: StoreSettings,
    /// The key file.
    pub keys_file: PathBuf,
    /// Concurrency.
    pub concurrency: usize,
    /// Rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Active-job cap.
    pub max_active_jobs: Option<u64>,
    /// Running quota per tenant.
    pub max_running_per_tenant: Option<u32>,
    /// Body limit.
    pub body_limit: usize,
    /// Register the demo kind.
    pub demo: bool,
    /// The product profiles to mount (backed by the demo kind).
    pub profiles: Vec<Product>,
    /// The demo kind's milliseconds per candidate for profile runs.
    pub demo_latency_ms: u64,
    /// Serve the dashboard at `/ui`.
    pub ui: bool,
    /// Webhooks.
    pub webhooks: WebhookSettings,
    /// How long finished jobs are kept.
    pub retention: Retention,
    /// Fire schedules from this node.
    pub schedules: bool,
    /// Milliseconds between retention sweeps.
    pub sweep_interval_ms: u64,
}

/// How webhooks are sealed and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// The sealing key's file.
    pub key_file: PathBuf,
    /// Allow private targets.
    pub allow_private: bool,
    /// First retry, in milliseconds.
    pub first_retry_ms: u64,
    /// Retry window, in seconds.
    pub window_s: u64,
    /// Attempt timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Disable a failing subscription after this many seconds.
    pub disable_after_s: u64,
    /// Requests in flight per endpoint.
    pub per_endpoint: usize,
    /// Run the delivery workers on this node.
    pub deliver: bool,
}

impl WebhookSettings {
    /// The delivery workers' configuration.
    #[must_use]
    pub fn delivery(&self) -> DeliveryConfig {
        DeliveryConfig {
            first_retry: Duration::from_millis(self.first_retry_ms),
            window: Duration::from_secs(self.window_s),
            timeout: Duration::from_millis(self.timeout_ms),
            disable_after: Duration::from_secs(self.disable_after_s),
            per_endpoint: self.per_endpoint,
            policy: TargetPolicy {
                allow_private: self.allow_private,
            },
            ..DeliveryConfig::default()
        }
    }
}

/// Which store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreSettings {
    /// A SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Its `synchronous` setting.
        synchronous: Synchronous,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The URL.
        url: String,
        /// The schema.
        schema: String,
    },
}

/// Why the server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ServeArgs {
    /// Merges flags and environment (already in `self`) over the file over the defaults.
    ///
    /// # Errors
    /// An unreadable or invalid config file, or an invalid value.
    pub fn settings(&self) -> Result<Settings, StartError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| StartError(format!("config file {}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        let synchronous = match self
            .synchronous
            .clone()
            .or(file.synchronous)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("normal") => Synchronous::Normal,
            Some("full") => Synchronous::Full,
            Some(other) => {
                return Err(StartError(format!(
                    "synchronous must be `normal` or `full`, not `{other}`"
                )));
            }
        };
        let database = self.database.clone().or(file.database);
        let url = self.database_url.clone().or(file.database_url);
        let store = match url {
            Some(url) => {
                if database.is_some() {
                    return Err(StartError(
                        "give either a SQLite database file or a PostgreSQL URL, not both".into(),
                    ));
                }
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    return Err(StartError(
                        "the database URL must start with postgres:// or postgresql://".into(),
                    ));
                }
                StoreSettings::Postgres {
                    url,
                    schema: self
                        .pg_schema
                        .clone()
                        .or(file.pg_schema)
                        .unwrap_or_else(|| "haltway".into()),
                }
            }
            None => StoreSettings::Sqlite {
                path: database.unwrap_or_else(|| PathBuf::from("haltway.db")),
                synchronous,
            },
        };
        let keys_file = self
            .keys_file
            .clone()
            .or(file.keys_file)
            .unwrap_or_else(|| match &store {
                StoreSettings::Sqlite { path, .. } => path.with_extension("keys.json"),
                StoreSettings::Postgres { .. } => PathBuf::from("haltway.keys.json"),
            });
        let rate = self.rate_limit.or(file.rate_limit);
        let burst = self.rate_burst.or(file.rate_burst);
        let rate_limit = match rate {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 => {
                let burst = burst.unwrap_or(r * 2.0).max(1.0);
                Some(RateLimit {
                    per_second: r,
                    burst,
                })
            }
            Some(r) => return Err(StartError(format!("rate limit must be above 0, not {r}"))),
        };
        let concurrency = self.concurrency.or(file.concurrency).unwrap_or(1000);
        if concurrency == 0 {
            return Err(StartError("concurrency must be at least 1".into()));
        }
        let demo = !self.no_demo && file.demo.unwrap_or(true);
        let profiles = match self.profiles.clone().or(file.profiles) {
            None if demo => Product::ALL.to_vec(),
            None => Vec::new(),
            Some(list) => parse_profiles(&list)?,
        };
        if !profiles.is_empty() && !demo {
            return Err(StartError(
                "the product profiles are backed by the demo kind: drop --no-demo or pass --profiles none"
                    .into(),
            ));
        }
        let demo_latency_ms = self.demo_latency_ms.or(file.demo_latency_ms).unwrap_or(150);
        if demo_latency_ms > 10_000 {
            return Err(StartError("demo latency must be at most 10000 ms".into()));
        }
        let webhook_timeout_ms = self
            .webhook_timeout_ms
            .or(file.webhook_timeout_ms)
            .unwrap_or(10_000);
        if !(100..=120_000).contains(&webhook_timeout_ms) {
            return Err(StartError(
                "the webhook timeout must be 100 to 120000 ms".into(),
            ));
        }
        let per_endpoint = self
            .webhook_per_endpoint
            .or(file.webhook_per_endpoint)
            .unwrap_or(4);
        if per_endpoint == 0 {
            return Err(StartError(
                "webhook requests per endpoint must be at least 1".into(),
            ));
        }
        let first_retry_ms = self
            .webhook_first_retry_ms
            .or(file.webhook_first_retry_ms)
            .unwrap_or(5_000);
        if first_retry_ms == 0 {
            return Err(StartError(
                "the first webhook retry must be at least 1 ms".into(),
            ));
        }
        let webhooks = WebhookSettings {
            key_file: self
                .webhook_key_file
                .clone()
                .or(file.webhook_key_file)
                .unwrap_or_else(|| match &store {
                    StoreSettings::Sqlite { path, .. } => path.with_extension("webhook-key"),
                    StoreSettings::Postgres { .. } => PathBuf::from("haltway.webhook-key"),
                }),
            allow_private: self.webhook_allow_private
                || file.webhook_allow_private.unwrap_or(false),
            first_retry_ms,
            window_s: self
                .webhook_window_s
                .or(file.webhook_window_s)
                .unwrap_or(48 * 3600),
            timeout_ms: webhook_timeout_ms,
            disable_after_s: self
                .webhook_disable_after_s
                .or(file.webhook_disable_after_s)
                .unwrap_or(5 * 24 * 3600),
            per_endpoint,
            deliver: !self.no_webhook_delivery && file.webhook_delivery.unwrap_or(true),
        };
        let age = |field: &str, flag: &Option<String>, file: Option<String>| {
            flag.clone()
                .or(file)
                .map_or(Ok(None), |t| parse_age(field, &t))
        };
        let retention = Retention {
            completed: age("keep_completed", &self.keep_completed, file.keep_completed)?,
            failed: age("keep_failed", &self.keep_failed, file.keep_failed)?,
            cancelled: age("keep_cancelled", &self.keep_cancelled, file.keep_cancelled)?,
        };
        Ok(Settings {
            webhooks,
            retention,
            schedules: !self.no_schedules && file.schedules.unwrap_or(true),
            sweep_interval_ms: self
                .sweep_interval_ms
                .or(file.sweep_interval_ms)
                .unwrap_or(60_000)
                .max(10),
            listen: self
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            store,
            keys_file,
            concurrency,
            rate_limit,
            max_active_jobs: self.max_active_jobs.or(file.max_active_jobs),
            max_running_per_tenant: self.max_running_per_tenant.or(file.max_running_per_tenant),
            body_limit: self.body_limit.or(file.body_limit).unwrap_or(1 << 20),
            demo,
            profiles,
            demo_latency_ms,
            ui: !self.no_ui && file.ui.unwrap_or(true),
        })
    }
}

/// An age such as `90s`, `30m`, `12h` or `7d`; `forever` for none.
fn parse_age(field: &str, text: &str) -> Result<Option<Duration>, StartError> {
    let text = text.trim();
    if text == "forever" {
        return Ok(None);
    }
    let bad = || {
        StartError(format!(
            "{field}: `{text}` is not an age (give a whole number with s, m, h or d, such as \
             `7d`, or `forever`)"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .filter(|s| *s > 0 && *s < i64::MAX as u64 / 1000)
        .map(|s| Some(Duration::from_secs(s)))
        .ok_or_else(bad)
}

/// `all`, `none`, or a comma-separated list of profile names.
fn parse_profiles(list: &str) -> Result<Vec<Product>, StartError> {
    match list.trim() {
        "all" => return Ok(Product::ALL.to_vec()),
        "none" | "" => return Ok(Vec::new()),
        _ => {}
    }
    let mut out = Vec::new();
    for name in list.split(',') {
        let product: Product = name.parse().map_err(StartError)?;
        if !out.contains(&product) {
            out.push(product);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_ages_parse_from_flags_and_file() {
        assert_eq!(
            parse_age("f", "7d").expect("7d"),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_age("f", "90s").expect("90s"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_age("f", "forever").expect("forever"), None);
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "-1d",
            "0s",
            "1.5h",
            "99999999999999999d",
        ] {
            let e = parse_age("keep_failed", bad).expect_err(bad);
            assert!(e.0.starts_with("keep_failed:"), "{bad}: {e}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("haltway.toml");
        std::fs::write(
            &file,
            "keep_completed = \"12h\"\nkeep_failed = \"30d\"\nschedules = false\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file),
            keep_failed: Some("forever".into()),
            ..ServeArgs::default()
        };
        let s = args.settings().expect("settings");
        assert_eq!(
            s.retention,
            Retention {
                completed: Some(Duration::from_secs(12 * 3600)),
                failed: None,
                cancelled: None,
            },
            "the flag wins over the file"
        );
        assert!(!s.schedules);
        assert_eq!(
            ServeArgs::default().settings().expect("defaults").retention,
            Retention::keep_all()
        );
    }

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("haltway.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nconcurrency = 7\nrate_limit = 5.0\ndemo = false\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            concurrency: Some(3),
            ..ServeArgs::default()
        };
        let s = args.settings().expect("settings");
        assert_eq!(s.listen, "0.0.0.0:9000", "from the file");
        assert_eq!(s.concurrency, 3, "the flag wins");
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                per_second: 5.0,
                burst: 10.0
            })
        );
        assert!(!s.demo);
        assert_eq!(
            s.store,
            StoreSettings::Sqlite {
                path: "haltway.db".into(),
                synchronous: Synchronous::Normal
            }
        );
        assert_eq!(s.keys_file, PathBuf::from("haltway.keys.json"));

        std::fs::write(&file, "colour = \"red\"\n").expect("write");
        let e = args.settings().expect_err("unknown setting");
        assert!(e.0.contains("colour"), "{e}");
        let both = ServeArgs {
            database: Some("a.db".into()),
            database_url: Some("postgres://x".into()),
            ..ServeArgs::default()
        };
        assert!(both.settings().is_err());
        let bad_sync = ServeArgs {
            synchronous: Some("sometimes".into()),
            ..ServeArgs::default()
        };
        assert!(bad_sync.settings().is_err());
    }

    #[test]
    fn profiles_are_all_by_default_and_chosen_by_name() {
        let all = ServeArgs::default().settings().expect("settings");
        assert_eq!(all.profiles, Product::ALL.to_vec());
        assert_eq!(all.demo_latency_ms, 150);
        let some = ServeArgs {
            profiles: Some("exa, Parallel,exa".into()),
            demo_latency_ms: Some(20),
            ..ServeArgs::default()
        };
        let s = some.settings().expect("settings");
        assert_eq!(s.profiles, vec![Product::Exa, Product::Parallel]);
        assert_eq!(s.demo_latency_ms, 20);
        let none = ServeArgs {
            profiles: Some("none".into()),
            ..ServeArgs::default()
        };
        assert!(none.settings().expect("settings").profiles.is_empty());
        let unknown = ServeArgs {
            profiles: Some("parallel,stripe".into()),
            ..ServeArgs::default()
        };
        let e = unknown.settings().expect_err("unknown profile");
        assert!(e.0.contains("stripe"), "{e}");
        // The profiles are backed by the demo kind: asking for them without it is an error,
        // while --no-demo alone mounts none.
        let without_demo = ServeArgs {
            no_demo: true,
            profiles: Some("scout".into()),
            ..ServeArgs::default()
        };
        assert!(without_demo.settings().is_err());
        let no_demo = ServeArgs {
            no_demo: true,
            ..ServeArgs::default()
        };
        assert!(no_demo.settings().expect("settings").profiles.is_empty());
        assert!(all.ui, "the dashboard is on by default");
        let no_ui = ServeArgs {
            no_ui: true,
            ..ServeArgs::default()
        };
        assert!(!no_ui.settings().expect("settings").ui);
        let slow = ServeArgs {
            demo_latency_ms: Some(10_001),
            ..ServeArgs::default()
        };
        assert!(slow.settings().is_err());
    }
}
