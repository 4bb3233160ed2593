//! Decides whether the tests that need PostgreSQL or Redis run: they do on CI (`CI=true`, where a
//! missing server must fail them) and wherever the variable naming the server is set; elsewhere
//! they are ignored. Cargo reruns this when one of the variables changes, which rebuilds this
//! crate and the test targets that use it (never a library or the binary).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    for (cfg, var) in [("skip_postgres", "LLM_PROXY_TEST_DATABASE_URL"), ("skip_redis", "LLM_PROXY_TEST_REDIS_URL")] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let on_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let configured = std::env::var(var).is_ok_and(|v| !v.is_empty());
        if !on_ci && !configured {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
