//! The command line: `serve`, `keys`, `config check`, `migrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use llm_proxy_core::UnixMillis;
use llm_proxy_core::config::{Config, Overrides, ProcessEnv};
use llm_proxy_core::request_log::escape_controls;
use llm_proxy_core::virtual_key::{KeyLimits, parse_duration};

use crate::audit::{self, Actor};
use crate::serve;

/// The file read when `--config` is not given, if it exists.
const DEFAULT_CONFIG_FILE: &str = "llm-proxy.yaml";

#[derive(Parser)]
#[command(
    name = "llm-proxy",
    version,
    about = "An LLM gateway: one OpenAI-compatible endpoint in front of every provider."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct ConfigArg {
    /// Config file (default: ./llm-proxy.yaml when present).
    #[arg(long, short = 'c', env = "LLM_PROXY_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Address to listen on (beats LLM_PROXY_HOST and listen_addr).
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on (beats LLM_PROXY_PORT and listen_addr).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Manage virtual keys.
    Keys {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the users of the admin API and dashboard.
    Users {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply database migrations (serve does this too).
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Look up prices and context windows in the pricing registry (with the config's overrides).
    Models {
        #[command(flatten)]
        config: ConfigArg,
        /// Part of a `provider/model` name, e.g. `gpt-4o` or `anthropic/`; empty lists all.
        query: Option<String>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user. Its password is read from stdin with --password-stdin, else generated and
    /// printed once, as the last line.
    Create {
        name: String,
        #[arg(long, default_value = "member", value_parser = ["admin", "viewer", "member"])]
        role: String,
        /// Read the password from stdin (its first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (its sessions end): from stdin with --password-stdin, else generated
    /// and printed once.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their passwords).
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the secret is printed once, as the last line.
    Create {
        #[arg(long)]
        name: String,
        /// Models this key may use (comma-separated public names); default: all.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Lifetime, e.g. 30d, 12h, 2w.
        #[arg(long)]
        expires: Option<String>,
        /// The user this key belongs to.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        limits: KeyLimitArgs,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys (secrets are never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; takes effect on running servers within a second.
    Revoke { id: String },
}

/// A key's own limits; unset ones come from the config's `rate_limits` and `cost_budget`.
#[derive(Args, Clone, Default)]
struct KeyLimitArgs {
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Requests in flight at once.
    #[arg(long)]
    max_parallel: Option<u32>,
    /// USD per calendar hour (UTC).
    #[arg(long)]
    budget_hourly: Option<f64>,
    /// USD per calendar day (UTC).
    #[arg(long)]
    budget_daily: Option<f64>,
    /// USD per calendar month (UTC).
    #[arg(long)]
    budget_monthly: Option<f64>,
}

impl KeyLimitArgs {
    fn into_limits(self) -> anyhow::Result<KeyLimits> {
        let limits = KeyLimits {
            rpm: self.rpm,
            tpm: self.tpm,
            max_parallel: self.max_parallel,
            budget_hourly: self.budget_hourly,
            budget_daily: self.budget_daily,
            budget_monthly: self.budget_monthly,
        };
        if let Err((field, why)) = limits.check() {
            bail!("--{} {why}", field.replace('_', "-"));
        }
        Ok(limits)
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective result, secrets redacted.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, host, port } => {
            let config = load(&config, &Overrides { host, port })?;
            init_tracing(&config.log_level);
            let runtime = runtime(config.workers)?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(config.listen_addr)
                    .await
                    .with_context(|| format!("listening on {}", config.listen_addr))?;
                serve::run(config, listener, serve::shutdown_signal(), || {}).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { config, command: ConfigCommand::Check } => {
            let path = config_path(&config)?;
            let text = path.as_deref().map(read_file).transpose()?;
            match Config::load(text.as_deref(), &ProcessEnv, &Overrides::default()) {
                Ok((cfg, warnings)) => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    match &path {
                        Some(p) => eprintln!("{}: ok", p.display()),
                        None => eprintln!("no config file; defaults and environment: ok"),
                    }
                    print!("{}", cfg.redacted_yaml());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    let source =
                        path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "configuration".into());
                    eprintln!("{source}: {} problem(s)", errors.0.len());
                    for e in errors.0 {
                        eprintln!("  {e}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Migrate { config } => {
            let config = load(&config, &Overrides::default())?;
            init_tracing(&config.log_level);
            runtime(Some(1))?.block_on(async { serve::open_store(&config).await.map(|_| ()) })?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { config, query } => {
            let config = load(&config, &Overrides::default())?;
            let overrides = match &config.pricing.overrides_file {
                None => None,
                Some(p) => Some(read_file(Path::new(p))?),
            };
            let table = llm_proxy_core::pricing::PricingSource::initial(overrides.as_deref())
                .map_err(|e| anyhow::anyhow!("pricing: {e}"))?;
            let rows = table.search(query.as_deref().unwrap_or(""));
            if rows.is_empty() {
                eprintln!("no model in the registry matches {:?}", query.unwrap_or_default());
                return Ok(ExitCode::FAILURE);
            }
            // Model names come from the operator's overrides file too: no terminal escapes.
            for line in llm_proxy_core::pricing::format_table(&rows).lines() {
                println!("{}", escape_controls(line));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { config, command } => {
            let config = load(&config, &Overrides::default())?;
            init_tracing("warn");
            runtime(Some(1))?.block_on(keys(&config, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Users { config, command } => {
            let config = load(&config, &Overrides::default())?;
            init_tracing("warn");
            runtime(Some(1))?.block_on(users(&config, command))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn config_path(arg: &ConfigArg) -> anyhow::Result<Option<PathBuf>> {
    match &arg.config {
        Some(p) if !p.exists() => bail!("config file {} does not exist", p.display()),
        Some(p) => Ok(Some(p.clone())),
        None => Ok(Path::new(DEFAULT_CONFIG_FILE).exists().then(|| PathBuf::from(DEFAULT_CONFIG_FILE))),
    }
}

fn read_file(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

fn load(arg: &ConfigArg, overrides: &Overrides) -> anyhow::Result<Config> {
    let path = config_path(arg)?;
    let text = path.as_deref().map(read_file).transpose()?;
    match Config::load(text.as_deref(), &ProcessEnv, overrides) {
        Ok((config, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            Ok(config)
        }
        Err(errors) => {
            let source = path.map(|p| p.display().to_string()).unwrap_or_else(|| "configuration".into());
            bail!("{source} is invalid (run `llm-proxy config check`):\n{errors}")
        }
    }
}

fn init_tracing(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().build().context("starting the async runtime")
}

fn format_time(t: Option<UnixMillis>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp_millis(t.to_i64()))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `rpm=60 tpm=1000 $5/day`; `-` for none.
fn describe_limits(l: &KeyLimits) -> String {
    let mut parts = Vec::new();
    if let Some(v) = l.rpm {
        parts.push(format!("rpm={v}"));
    }
    if let Some(v) = l.tpm {
        parts.push(format!("tpm={v}"));
    }
    if let Some(v) = l.max_parallel {
        parts.push(format!("parallel={v}"));
    }
    for (v, per) in [(l.budget_hourly, "hour"), (l.budget_daily, "day"), (l.budget_monthly, "month")] {
        if let Some(v) = v {
            parts.push(format!("${v}/{per}"));
        }
    }
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}

/// The password for `users create`/`passwd`: stdin's first line, or a generated one (and whether
/// it was generated, so it is printed).
fn password_for(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::passwords::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
    Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
}

async fn users(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    let store = serve::open_store(config).await?;
    match command {
        UsersCommand::Create { name, role, password_stdin } => {
            let role = llm_proxy_core::user::Role::parse(&role).context("--role is admin, viewer or member")?;
            let (password, generated) = password_for(password_stdin)?;
            let user = crate::users::create(store.as_ref(), &name, role, &password).await?;
            let after = crate::users::view(&user);
            audit::record(store.as_ref(), &Actor::cli(), "user.create", Some(&user.id), None, Some(&after)).await;
            println!("created user `{}` ({}), id {}", user.username, user.role.as_str(), user.id);
            if generated {
                println!("password (shown once):");
                println!("{password}");
            }
        }
        UsersCommand::Passwd { name, password_stdin } => {
            let (password, generated) = password_for(password_stdin)?;
            crate::users::set_password(store.as_ref(), &name, &password).await?;
            let after = serde_json::json!({"username": name, "password": "changed"});
            audit::record(store.as_ref(), &Actor::cli(), "user.update", Some(&name), None, Some(&after)).await;
            println!("password of `{name}` changed; its sessions have ended");
            if generated {
                println!("password (shown once):");
                println!("{password}");
            }
        }
        UsersCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                for u in &users {
                    println!("{}", crate::users::view(u));
                }
            } else {
                println!("{:<32} {:<8} {:<36} CREATED", "USERNAME", "ROLE", "ID");
                for u in &users {
                    println!(
                        "{:<32} {:<8} {:<36} {}",
                        u.username,
                        u.role.as_str(),
                        u.id,
                        format_time(Some(u.created_at))
                    );
                }
            }
        }
    }
    Ok(())
}

async fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let store = serve::open_store(config).await?;
    match command {
        KeysCommand::Create { name, models, expires, user, limits, json } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            // Names are printed by `keys list` and shown in the dashboard: no terminal escapes,
            // no line breaks.
            for (flag, text) in std::iter::once(("--name", &name))
                .chain(user.iter().map(|u| ("--user", u)))
                .chain(models.iter().map(|m| ("--models", m)))
            {
                if text.chars().any(char::is_control) {
                    bail!("{flag} must not contain control characters (got {:?})", text);
                }
            }
            let limits = limits.into_limits()?;
            let expires_at = match expires.as_deref() {
                None => None,
                Some(s) => Some(
                    UnixMillis::now()
                        + parse_duration(s).with_context(|| {
                            format!("--expires {s:?}: use a number and one of s, m, h, d, w (e.g. 30d)")
                        })?,
                ),
            };
            let spec = crate::keys::KeySpec { name, models, user, expires_at, limits };
            let (record, secret) = crate::keys::create(store.as_ref(), spec).await?;
            let after = serde_json::json!({"id": record.id, "name": record.name, "user": record.user,
                                           "models": record.models, "limits": record.limits});
            audit::record(store.as_ref(), &Actor::cli(), "key.create", Some(&record.id), None, Some(&after)).await;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id, "name": record.name, "key": secret, "display": record.display,
                        "models": record.models, "user": record.user, "expires_at": record.expires_at,
                        "limits": record.limits,
                    })
                );
            } else {
                println!("Created key {:?} (id {}).", record.name, record.id);
                println!("Store it now: it is shown only this once.");
                println!("{}", secret);
            }
        }
        KeysCommand::List { json } => {
            let keys = store.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(());
            }
            println!(
                "{:<36}  {:<20}  {:<14}  {:<16}  {:<16}  {:<7}  {:<24}  MODELS",
                "ID", "NAME", "KEY", "CREATED", "EXPIRES", "STATUS", "LIMITS"
            );
            let now = UnixMillis::now();
            for k in keys {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if !k.is_active(now) {
                    "expired"
                } else {
                    "active"
                };
                let models = if k.models.is_empty() { "*".to_string() } else { k.models.join(",") };
                // Names and models are whoever created the key's text (the admin API, another
                // tool): escaped, so an ESC sequence in one cannot drive the reader's terminal.
                println!(
                    "{:<36}  {:<20}  {:<14}  {:<16}  {:<16}  {:<7}  {:<24}  {}",
                    escape_controls(&k.id),
                    escape_controls(&k.name),
                    escape_controls(&k.display),
                    format_time(Some(k.created_at)),
                    format_time(k.expires_at),
                    status,
                    describe_limits(&k.limits),
                    escape_controls(&models)
                );
            }
        }
        KeysCommand::Revoke { id } => match store.revoke_key(&id).await {
            Ok(k) => {
                let after = serde_json::json!({"id": k.id, "name": k.name, "revoked_at": k.revoked_at});
                audit::record(store.as_ref(), &Actor::cli(), "key.revoke", Some(&k.id), None, Some(&after)).await;
                println!("Revoked key {:?} ({}).", k.name, k.id)
            }
            Err(llm_proxy_core::store::StoreError::NotFound) => bail!("no key with id {id}"),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}
