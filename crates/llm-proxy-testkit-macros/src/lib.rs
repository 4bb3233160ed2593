//! `#[needs_postgres]` and `#[needs_redis]`: a test that needs one of these servers is reported
//! as ignored, with the variable to set, when the server is not configured — not as passed after
//! returning early. On CI (`CI=true`) it always runs, so a missing server fails it there.
//!
//! ```ignore
//! #[needs_redis]
//! #[tokio::test]
//! async fn counts_on_redis() { /* ... */ }
//! ```
//!
//! The decision is made when this crate is built (see `build.rs`): `cargo test` with the variable
//! set, or unset, rebuilds it and the test targets that use it. Dev-only; depends on nothing.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Ignores the test unless `LLM_PROXY_TEST_DATABASE_URL` is set (or `CI=true`).
#[proc_macro_attribute]
pub fn needs_postgres(args: TokenStream, test: TokenStream) -> TokenStream {
    gate(
        cfg!(skip_postgres),
        "needs PostgreSQL: set LLM_PROXY_TEST_DATABASE_URL (README: Running the tests)",
        args,
        test,
    )
}

/// Ignores the test unless `LLM_PROXY_TEST_REDIS_URL` is set (or `CI=true`).
#[proc_macro_attribute]
pub fn needs_redis(args: TokenStream, test: TokenStream) -> TokenStream {
    gate(cfg!(skip_redis), "needs Redis: set LLM_PROXY_TEST_REDIS_URL (README: Running the tests)", args, test)
}

/// `test` as it is, or behind `#[ignore = "<reason>"]`.
fn gate(skip: bool, reason: &str, args: TokenStream, test: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return compile_error("this attribute takes no arguments");
    }
    if !skip {
        return test;
    }
    let ignore = [
        TokenTree::Ident(Ident::new("ignore", Span::call_site())),
        TokenTree::Punct(Punct::new('=', Spacing::Alone)),
        TokenTree::Literal(Literal::string(reason)),
    ];
    let mut out: TokenStream = [
        TokenTree::Punct(Punct::new('#', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Bracket, ignore.into_iter().collect())),
    ]
    .into_iter()
    .collect();
    out.extend(test);
    out
}

/// `compile_error!("<message>");`
fn compile_error(message: &str) -> TokenStream {
    [
        TokenTree::Ident(Ident::new("compile_error", Span::call_site())),
        TokenTree::Punct(Punct::new('!', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Parenthesis, TokenTree::Literal(Literal::string(message)).into())),
        TokenTree::Punct(Punct::new(';', Spacing::Alone)),
    ]
    .into_iter()
    .collect()
}
