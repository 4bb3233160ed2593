//! `llm-proxy-mock [ADDR] [--anthropic-key KEY] [--gemini-key KEY] [--glm-key ID.SECRET]`: runs
//! the mock upstream for the SDK and browser suites and the benchmark.
//!
//! ADDR defaults to `127.0.0.1:0`. Keys may also come from `LLM_PROXY_MOCK_ANTHROPIC_KEY`,
//! `LLM_PROXY_MOCK_GEMINI_KEY` and `LLM_PROXY_MOCK_GLM_KEY` (a flag wins); without them any
//! Anthropic or Gemini key is accepted and GLM tokens are checked against `mockid.mocksecret`.
//! The first line on stdout is `listening on ADDR`, and nothing else is written there (callers
//! read that line and may close the pipe); the base URL of each protocol goes to stderr.

use llm_proxy_testkit::{MockConfig, MockUpstream};

const USAGE: &str = "usage: llm-proxy-mock [ADDR] [--anthropic-key KEY] [--gemini-key KEY] [--glm-key ID.SECRET]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<(String, MockConfig), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut addr = None;
    let mut config = MockConfig {
        anthropic_key: env("LLM_PROXY_MOCK_ANTHROPIC_KEY"),
        gemini_key: env("LLM_PROXY_MOCK_GEMINI_KEY"),
        ..MockConfig::default()
    };
    if let Some(key) = env("LLM_PROXY_MOCK_GLM_KEY") {
        config.glm_key = key;
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--anthropic-key" => config.anthropic_key = Some(value()?),
            "--gemini-key" => config.gemini_key = Some(value()?),
            "--glm-key" => config.glm_key = value()?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}\n{USAGE}")),
            _ if addr.is_none() => addr = Some(arg),
            _ => return Err(format!("unexpected argument {arg}\n{USAGE}")),
        }
    }
    if !config.glm_key.contains('.') {
        return Err(format!("the GLM key must be id.secret\n{USAGE}"));
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:0".into()), config))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (addr, config) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mock = MockUpstream::start_on_with(&addr, config).await?;
    println!("listening on {}", mock.addr);
    eprintln!(
        "openai: {}\nanthropic: {}\ngemini: {}\nglm: {}\n{:?}",
        mock.base_url(),
        mock.anthropic_base_url(),
        mock.gemini_base_url(),
        mock.glm_base_url(),
        mock.state.config()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
