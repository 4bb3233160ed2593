//! `llm-proxy-mock [ADDR]`: runs the mock upstream for the SDK and browser suites and the benchmark.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let mock = llm_proxy_testkit::MockUpstream::start_on(&addr).await?;
    println!("listening on {}", mock.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
