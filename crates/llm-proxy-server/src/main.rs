//! `llm-proxy`: see `llm-proxy --help`.

fn main() -> std::process::ExitCode {
    llm_proxy_server::cli::main()
}
