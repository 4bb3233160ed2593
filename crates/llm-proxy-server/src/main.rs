//! `llm-proxy`: see `llm-proxy --help`.

/// A request allocates and frees many small buffers across threads; mimalloc does that for less
/// CPU than glibc's allocator (measured with bench/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llm_proxy_server::cli::main()
}
