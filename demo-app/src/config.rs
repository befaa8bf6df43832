//! Configuration from flags and the environment (each flag has its variable; `--help` lists
//! them); a bad value is one clear line and a non-zero exit.

use std::fmt;
use std::time::Duration;

/// The framework that serves the web pages and the scheduler API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    /// axum 0.8.
    Axum,
    /// warp 0.4.
    Warp,
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Axum => "axum",
            Self::Warp => "warp",
        })
    }
}

/// Where the scheduler keeps the update schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerStore {
    /// In the `DATABASE_URL` database, shared by every instance of the demo on it: each
    /// update runs once, on one of them (the default).
    Database,
    /// In Redis at `url`, under the key prefix `prefix`, shared by every instance of the demo
    /// on it (the rows still go to `DATABASE_URL`).
    Redis {
        /// `SCHEDULER_STORE`.
        url: String,
        /// `SCHEDULER_REDIS_PREFIX` (default `apsched`).
        prefix: String,
    },
    /// In this process's memory: every process runs every update.
    Memory,
}

impl fmt::Display for SchedulerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database => f.write_str("database"),
            Self::Redis { url, prefix } => write!(f, "{} (key prefix {prefix})", redact(url)),
            Self::Memory => f.write_str("memory"),
        }
    }
}

/// The demo's settings.
#[derive(Clone)]
pub struct Config {
    /// `HOST` (default 127.0.0.1).
    pub host: String,
    /// `PORT` (default 5000).
    pub port: u16,
    /// `DATABASE_URL` (default `sqlite://demo.db`, created if missing).
    pub database_url: String,
    /// `UPDATE_INTERVAL_SECS` (default 30).
    pub update_interval: Duration,
    /// `SCHEDULER_API_TOKEN`: with it the API at /scheduler requires `Authorization: Bearer
    /// <token>`; without it the API is read-only.
    pub api_token: Option<String>,
    /// `DEMO_FRAMEWORK` when both frameworks are compiled in (default axum).
    pub framework: Framework,
    /// `SCHEDULER_STORE`: `database` (default), a `redis://` URL or `memory`.
    pub scheduler_store: SchedulerStore,
    /// `SCHEDULER_LEASE_SECS` (default 30): how long an instance that dies holds the fire it
    /// was running before another instance runs it again.
    pub lease: Duration,
    /// `SHUTDOWN_DEADLINE_SECS` (default 8, at most 3600): after SIGTERM or Ctrl-C, how long
    /// requests in flight and running updates get before they are cut off.
    pub shutdown_deadline: Duration,
    /// `SCHEDULER_TIMEZONE` (default UTC): the zone naive date-times and cron fields posted to
    /// the API are read in, as Flask-APScheduler's `SCHEDULER_TIMEZONE`.
    pub timezone: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &redact(&self.database_url))
            .field("update_interval", &self.update_interval)
            .field("api_token", &self.api_token.as_ref().map(|_| "(set)"))
            .field("framework", &self.framework)
            .field("scheduler_store", &self.scheduler_store)
            .field("lease", &self.lease)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("timezone", &self.timezone)
            .finish()
    }
}

/// The demo's settings as given: each flag, or else its environment variable. Checked by
/// [`Config::from_args`].
#[derive(Clone, Debug, Default, clap::Parser)]
#[command(
    name = "demo-app",
    version,
    about = "The article's demo: a database row every 30 s (the first at once) while the web \
             server answers, with the scheduler's REST API, dashboard and metrics."
)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "HOST")]
    pub host: Option<String>,
    /// Port to listen on [default: 5000]
    #[arg(long, env = "PORT")]
    pub port: Option<String>,
    /// sqlite://FILE (created if missing), postgres://... or mysql://... (MariaDB too)
    /// [default: sqlite://demo.db]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// database: the schedule lives in DATABASE_URL's database, shared by every instance;
    /// redis://HOST:PORT: in Redis, shared likewise; memory: this process only, so every
    /// process runs every update [default: database]
    #[arg(long, env = "SCHEDULER_STORE")]
    pub scheduler_store: Option<String>,
    /// With a redis:// SCHEDULER_STORE: the prefix of the scheduler's keys, so several
    /// services share one Redis [default: apsched]
    #[arg(long, env = "SCHEDULER_REDIS_PREFIX")]
    pub scheduler_redis_prefix: Option<String>,
    /// Seconds an instance that dies holds the fire it was running before another instance
    /// runs it again [default: 30]
    #[arg(long, env = "SCHEDULER_LEASE_SECS")]
    pub scheduler_lease_secs: Option<String>,
    /// The zone naive date-times and cron fields posted to the API are read in [default: UTC]
    #[arg(long, env = "SCHEDULER_TIMEZONE")]
    pub scheduler_timezone: Option<String>,
    /// Seconds between updates; the first is at start [default: 30]
    #[arg(long, env = "UPDATE_INTERVAL_SECS")]
    pub update_interval_secs: Option<String>,
    /// With it, /scheduler requires `Authorization: Bearer <token>`; without it the API (and
    /// the dashboard) is read-only
    #[arg(long, env = "SCHEDULER_API_TOKEN", hide_env_values = true)]
    pub scheduler_api_token: Option<String>,
    /// After SIGTERM or Ctrl-C, seconds requests in flight and a running update get before
    /// they are cut off (0 to 3600) [default: 8]
    #[arg(long, env = "SHUTDOWN_DEADLINE_SECS")]
    pub shutdown_deadline_secs: Option<String>,
    /// axum or warp, when both are compiled in [default: axum]
    #[arg(long, env = "DEMO_FRAMEWORK")]
    pub demo_framework: Option<String>,
}

impl Args {
    /// The value given for a setting, by its variable's name.
    #[must_use]
    pub fn get(&self, variable: &str) -> Option<String> {
        match variable {
            "HOST" => self.host.clone(),
            "PORT" => self.port.clone(),
            "DATABASE_URL" => self.database_url.clone(),
            "SCHEDULER_STORE" => self.scheduler_store.clone(),
            "SCHEDULER_REDIS_PREFIX" => self.scheduler_redis_prefix.clone(),
            "SCHEDULER_LEASE_SECS" => self.scheduler_lease_secs.clone(),
            "SCHEDULER_TIMEZONE" => self.scheduler_timezone.clone(),
            "UPDATE_INTERVAL_SECS" => self.update_interval_secs.clone(),
            "SCHEDULER_API_TOKEN" => self.scheduler_api_token.clone(),
            "SHUTDOWN_DEADLINE_SECS" => self.shutdown_deadline_secs.clone(),
            "DEMO_FRAMEWORK" => self.demo_framework.clone(),
            _ => None,
        }
    }
}

/// A setting with a value the demo cannot use.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The flag is the variable's name in kebab case: PORT and --port.
        let flag = self.variable.to_ascii_lowercase().replace('_', "-");
        write!(
            f,
            "{}={:?} (--{flag}): {}",
            self.variable, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks the settings given as flags or variables.
    ///
    /// # Errors
    ///
    /// The first setting with a value that cannot be used, and why.
    pub fn from_args(args: &Args) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| args.get(name))
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// The first variable with a value that cannot be used, and why.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let error = |variable, value: &str, reason: &str| ConfigError {
            variable,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let host = lookup("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        if host.trim().is_empty() {
            return Err(error("HOST", &host, "must not be empty"));
        }
        let port = match lookup("PORT") {
            None => 5000,
            Some(value) => value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| error("PORT", &value, "not a port number (1-65535)"))?,
        };
        let database_url = match lookup("DATABASE_URL") {
            None => "sqlite://demo.db".to_owned(),
            Some(value) if value.trim().is_empty() => {
                return Err(error("DATABASE_URL", &value, "must not be empty"));
            }
            Some(value) => {
                // MariaDB is reached with mysql:// (sea-orm knows no mariadb:// scheme).
                let known = ["sqlite:", "postgres://", "postgresql://", "mysql://"];
                if !known.iter().any(|scheme| value.starts_with(scheme)) {
                    return Err(error(
                        "DATABASE_URL",
                        &redact(&value),
                        "expected a sqlite://, postgres:// or mysql:// URL (mysql:// for MariaDB too)",
                    ));
                }
                value
            }
        };
        let update_interval = match lookup("UPDATE_INTERVAL_SECS") {
            None => Duration::from_secs(30),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=366 * 24 * 3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    error(
                        "UPDATE_INTERVAL_SECS",
                        &value,
                        "must be a whole number of seconds, from 1 to a year",
                    )
                })?,
        };
        let api_token = lookup("SCHEDULER_API_TOKEN").filter(|t| !t.is_empty());
        let framework = match lookup("DEMO_FRAMEWORK").as_deref().map(str::trim) {
            None | Some("") => default_framework(),
            Some("axum") if cfg!(feature = "axum") => Framework::Axum,
            Some("warp") if cfg!(feature = "warp") => Framework::Warp,
            Some(other @ ("axum" | "warp")) => {
                return Err(error(
                    "DEMO_FRAMEWORK",
                    other,
                    &format!("this build has no {other}; build it with `--features {other}`"),
                ));
            }
            Some(other) => return Err(error("DEMO_FRAMEWORK", other, "expected axum or warp")),
        };
        let scheduler_store = match lookup("SCHEDULER_STORE").as_deref().map(str::trim) {
            None | Some("" | "database") => SchedulerStore::Database,
            Some("memory") => SchedulerStore::Memory,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let prefix = match lookup("SCHEDULER_REDIS_PREFIX") {
                    None => "apsched".to_owned(),
                    Some(value) if value.trim().is_empty() => {
                        return Err(error(
                            "SCHEDULER_REDIS_PREFIX",
                            &value,
                            "must not be empty (leave it unset for the default, apsched)",
                        ));
                    }
                    Some(value) => value.trim().to_owned(),
                };
                SchedulerStore::Redis {
                    url: url.to_owned(),
                    prefix,
                }
            }
            Some(other) => {
                return Err(error(
                    "SCHEDULER_STORE",
                    other,
                    "expected database (the schedule in DATABASE_URL, shared by every instance), \
                     a redis:// URL (the schedule in Redis, shared by every instance) or memory \
                     (this process only)",
                ));
            }
        };
        if let (Some(prefix), false) = (
            lookup("SCHEDULER_REDIS_PREFIX"),
            matches!(scheduler_store, SchedulerStore::Redis { .. }),
        ) {
            return Err(error(
                "SCHEDULER_REDIS_PREFIX",
                &prefix,
                "applies to a schedule kept in Redis only, and SCHEDULER_STORE is not a redis:// URL",
            ));
        }
        let lease = match lookup("SCHEDULER_LEASE_SECS") {
            None => Duration::from_secs(30),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    error(
                        "SCHEDULER_LEASE_SECS",
                        &value,
                        "must be a whole number of seconds, from 1 to 3600",
                    )
                })?,
        };
        let shutdown_deadline = match lookup("SHUTDOWN_DEADLINE_SECS") {
            None => Duration::from_secs(8),
            Some(value) => value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=3600.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    error(
                        "SHUTDOWN_DEADLINE_SECS",
                        &value,
                        "must be a number of seconds, from 0 to 3600",
                    )
                })?,
        };
        let timezone = match lookup("SCHEDULER_TIMEZONE") {
            None => "UTC".to_owned(),
            Some(value) => {
                // Checked here so a typo stops the demo before anything starts.
                let _checked = apsched::Scheduler::builder()
                    .timezone(&value)
                    .map_err(|e| error("SCHEDULER_TIMEZONE", &value, &e.to_string()))?;
                value.trim().to_owned()
            }
        };
        Ok(Self {
            host,
            port,
            database_url,
            update_interval,
            api_token,
            framework,
            scheduler_store,
            lease,
            shutdown_deadline,
            timezone,
        })
    }

    /// The settings as one line, for the log at start; the token and any database password
    /// are not shown.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "framework={} HOST={} PORT={} DATABASE_URL={} SCHEDULER_STORE={} SCHEDULER_LEASE_SECS={} SCHEDULER_TIMEZONE={} UPDATE_INTERVAL_SECS={} SHUTDOWN_DEADLINE_SECS={} SCHEDULER_API_TOKEN={} RUST_LOG={}",
            self.framework,
            self.host,
            self.port,
            redact(&self.database_url),
            self.scheduler_store,
            self.lease.as_secs(),
            self.timezone,
            self.update_interval.as_secs(),
            self.shutdown_deadline.as_secs_f64(),
            if self.api_token.is_some() {
                "(set)"
            } else {
                "(unset: the scheduler API is read-only)"
            },
            std::env::var("RUST_LOG").unwrap_or_else(|_| "(unset: info)".to_owned()),
        )
    }
}

const fn default_framework() -> Framework {
    if cfg!(feature = "axum") {
        Framework::Axum
    } else {
        Framework::Warp
    }
}

/// A database URL with its password replaced by `***`.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database_url.as_str()),
            ("127.0.0.1", 5000, "sqlite://demo.db")
        );
        assert_eq!(c.update_interval, Duration::from_secs(30));
        assert_eq!(c.api_token, None);
        assert_eq!(c.scheduler_store, SchedulerStore::Database);
        assert_eq!(c.lease, Duration::from_secs(30));
        assert_eq!(c.shutdown_deadline, Duration::from_secs(8));
        let c = config(&[("SHUTDOWN_DEADLINE_SECS", "2.5")]).unwrap();
        assert_eq!(c.shutdown_deadline, Duration::from_millis(2500));
        let c = config(&[("SCHEDULER_STORE", "redis://127.0.0.1:6379")]).unwrap();
        assert_eq!(
            c.scheduler_store,
            SchedulerStore::Redis {
                url: "redis://127.0.0.1:6379".to_owned(),
                prefix: "apsched".to_owned()
            }
        );
        let c = config(&[
            ("SCHEDULER_STORE", "redis://127.0.0.1:6379"),
            ("SCHEDULER_REDIS_PREFIX", " billing "),
        ])
        .unwrap();
        assert!(
            matches!(&c.scheduler_store, SchedulerStore::Redis { prefix, .. } if prefix == "billing")
        );
        let c = config(&[("SCHEDULER_STORE", "memory"), ("SCHEDULER_LEASE_SECS", "2")]).unwrap();
        assert_eq!(
            (c.scheduler_store, c.lease),
            (SchedulerStore::Memory, Duration::from_secs(2))
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (
                ("PORT", "abc"),
                "PORT=\"abc\" (--port): not a port number (1-65535)",
            ),
            (
                ("PORT", "0"),
                "PORT=\"0\" (--port): not a port number (1-65535)",
            ),
            (
                ("UPDATE_INTERVAL_SECS", "0"),
                "UPDATE_INTERVAL_SECS=\"0\" (--update-interval-secs): must be a whole number of seconds, from 1 to a year",
            ),
            (
                ("UPDATE_INTERVAL_SECS", "1.5"),
                "UPDATE_INTERVAL_SECS=\"1.5\" (--update-interval-secs): must be a whole number of seconds, from 1 to a year",
            ),
            (
                ("DATABASE_URL", "oracle://x"),
                "DATABASE_URL=\"oracle://x\" (--database-url): expected a sqlite://, postgres:// or mysql:// URL \
                 (mysql:// for MariaDB too)",
            ),
            (
                ("DEMO_FRAMEWORK", "rocket"),
                "DEMO_FRAMEWORK=\"rocket\" (--demo-framework): expected axum or warp",
            ),
            (
                ("SCHEDULER_STORE", "redis"),
                "SCHEDULER_STORE=\"redis\" (--scheduler-store): expected database (the schedule in \
                 DATABASE_URL, shared by every instance), a redis:// URL (the schedule in Redis, \
                 shared by every instance) or memory (this process only)",
            ),
            (
                ("SCHEDULER_LEASE_SECS", "0"),
                "SCHEDULER_LEASE_SECS=\"0\" (--scheduler-lease-secs): must be a whole number of seconds, from 1 to 3600",
            ),
            (
                ("SCHEDULER_TIMEZONE", "Mars/Olympus"),
                "SCHEDULER_TIMEZONE=\"Mars/Olympus\" (--scheduler-timezone): unknown time zone \"Mars/Olympus\" (expected an IANA name such as \"Europe/Berlin\")",
            ),
            (
                ("SHUTDOWN_DEADLINE_SECS", "-1"),
                "SHUTDOWN_DEADLINE_SECS=\"-1\" (--shutdown-deadline-secs): must be a number of seconds, from 0 to 3600",
            ),
        ];
        for ((name, value), message) in cases {
            assert_eq!(
                config(&[(name, value)]).err().map(|e| e.to_string()),
                Some(message.to_owned())
            );
        }
        assert_eq!(
            config(&[("SCHEDULER_REDIS_PREFIX", "billing")])
                .err()
                .map(|e| e.to_string()),
            Some(
                "SCHEDULER_REDIS_PREFIX=\"billing\" (--scheduler-redis-prefix): applies to a \
                 schedule kept in Redis only, and SCHEDULER_STORE is not a redis:// URL"
                    .to_owned()
            )
        );
        assert_eq!(
            config(&[
                ("SCHEDULER_STORE", "redis://127.0.0.1:6379"),
                ("SCHEDULER_REDIS_PREFIX", " ")
            ])
            .err()
            .map(|e| e.to_string()),
            Some(
                "SCHEDULER_REDIS_PREFIX=\" \" (--scheduler-redis-prefix): must not be empty \
                 (leave it unset for the default, apsched)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("sqlite://demo.db"), "sqlite://demo.db");
        let c = config(&[
            ("DATABASE_URL", "mysql://root:pw@localhost/test"),
            ("SCHEDULER_API_TOKEN", "t"),
        ])
        .unwrap();
        let summary = c.summary();
        assert!(
            summary.contains("mysql://root:***@localhost/test") && !summary.contains("pw@"),
            "{summary}"
        );
        assert!(summary.contains("SCHEDULER_API_TOKEN=(set)"), "{summary}");
    }
}
