"""Real agents as clients, unchanged but for a base URL and a key: Claude Code (``claude -p``, the
Messages API) and Codex CLI (``codex exec``, the Responses API) onto an upstream of every protocol.
Each run gets its own virtual key, so the gateway's log rows of that run are exactly the rows of
that key.

``tests/e2e/run.sh`` installs the pinned releases from the npm registry and names them in
``E2E_CLAUDE`` and ``E2E_CODEX``; without them these tests fail (they never skip).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import Stack, _clean_env, eventually

# The upstreams of the suite's config, one per wire protocol.
UPSTREAMS = ["oai", "claude", "gem", "zhipu"]
AGENT_TIMEOUT_S = 180


def _agent(var: str, name: str) -> str:
    path = os.environ.get(var, "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not installed: run the suite with tests/e2e/run.sh, which installs it")
    return path


def _claude() -> str:
    return _agent("E2E_CLAUDE", "Claude Code")


def run_claude(stack: Stack, tmp_path: Path, key: str, model: str, prompt: str, *flags: str) -> str:
    """``claude -p PROMPT`` pointed at the gateway, in a fresh home (no settings, no login), with
    every call it makes going to ``model``. Returns its stdout; a non-zero exit fails the test."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = _clean_env()
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=stack.gateway_url,
        ANTHROPIC_AUTH_TOKEN=key,
        ANTHROPIC_MODEL=model,
        ANTHROPIC_SMALL_FAST_MODEL=model,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=model,
        # Nothing may leave for Anthropic's own services (the sandbox has no internet anyway).
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
    )
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        env.pop(var, None)
    proc = subprocess.run(
        [_claude(), "-p", prompt, *flags],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=AGENT_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"claude exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def rows_of(stack: Stack, key_id: str, at_least: int) -> list[dict[str, Any]]:
    """The gateway's log rows of one key, once there are ``at_least`` of them."""

    def rows() -> list[dict[str, Any]]:
        r = stack.admin_get("/api/logs", key_id=key_id, limit=1000)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        return data if len(data) >= at_least else []

    return eventually(rows, f"fewer than {at_least} log rows for key {key_id}")


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_claude_code_answers_through_every_protocol(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"claude-code-plain-{upstream}")
    out = run_claude(stack, tmp_path, created["key"], f"{upstream}/mock-chunks-3", "say hello")
    assert out.strip() == "Hello w1 w2"
    for row in rows_of(stack, created["id"], 1):
        assert row["status"] == 200 and row["endpoint"].startswith("messages"), row
        assert row["prompt_tokens"] and row["prompt_tokens"] > 0, row


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_claude_code_reads_a_long_stream_whole(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"claude-code-long-{upstream}")
    out = run_claude(stack, tmp_path, created["key"], f"{upstream}/mock-chunks-400", "tell me a long story")
    words = out.split()
    assert words[0] == "Hello" and words[-1] == "w399" and len(words) == 400, out[-200:]
    row = rows_of(stack, created["id"], 1)[0]
    assert (row["status"], row["stream"]) == (200, True), row
    # One output token per chunk, as the mock reports: the stream was metered whole.
    assert row["completion_tokens"] == 400, row


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_claude_code_runs_a_tool_and_answers_with_its_result(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"claude-code-tool-{upstream}")
    model = f"{upstream}/mock-agent"
    out = run_claude(stack, tmp_path, created["key"], model, "run the marker command", "--allowedTools", "Bash")
    # The model asked for Bash, Claude Code ran it, sent the output back, and the answer quotes it.
    assert out.strip() == "The tool said: mock-agent-ok"
    rows = rows_of(stack, created["id"], 2)
    assert all(r["status"] == 200 for r in rows), rows
    assert {r["model"] for r in rows} == {model}, rows
    # The call and the answer are two messages requests, the second carrying the tool result.
    upstream_model = "mock-agent"
    sent = [r for r in stack.mock_requests() if _names(r, upstream_model)]
    assert any("mock-agent-ok" in str(r["body"]) for r in sent), "the tool's output reached the upstream"


def _names(recorded: dict[str, Any], model: str) -> bool:
    """Whether a request the mock recorded was for ``model`` (Gemini names it in the path)."""
    return recorded["body"].get("model") == model or f"/models/{model}:" in recorded["path"]


def run_codex(stack: Stack, tmp_path: Path, key: str, model: str, prompt: str) -> str:
    """``codex exec PROMPT`` with one model provider, the gateway, over the Responses API (the
    ``wire_api`` Codex uses for every provider), in a fresh home. Returns its last message."""
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "gateway"\n'
        "[model_providers.gateway]\n"
        'name = "llm-proxy"\n'
        f'base_url = "{stack.base_url}"\n'
        'env_key = "LLM_PROXY_E2E_KEY"\n'
        'wire_api = "responses"\n'
    )
    env = _clean_env()
    env.update(CODEX_HOME=str(home), LLM_PROXY_E2E_KEY=key)
    env.pop("OPENAI_API_KEY", None)
    last = tmp_path / "last-message.txt"
    proc = subprocess.run(
        [
            _agent("E2E_CODEX", "Codex CLI"),
            "exec",
            "--skip-git-repo-check",
            # The sandbox needs namespaces a CI container may not grant; the only command run is
            # the mock model's `echo`.
            "--dangerously-bypass-approvals-and-sandbox",
            "--output-last-message",
            str(last),
            prompt,
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=AGENT_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"codex exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return last.read_text()


@pytest.mark.parametrize("upstream", ["oair", *UPSTREAMS])
def test_codex_answers_through_every_protocol(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"codex-plain-{upstream}")
    out = run_codex(stack, tmp_path, created["key"], f"{upstream}/mock-chunks-3", "say hello")
    assert out.strip() == "Hello w1 w2"
    rows = rows_of(stack, created["id"], 1)
    assert all(r["status"] == 200 and r["endpoint"] == "responses" for r in rows), rows
    assert all(r["prompt_tokens"] and r["completion_tokens"] for r in rows), rows


@pytest.mark.parametrize("upstream", ["oair", *UPSTREAMS])
def test_codex_reads_a_long_stream_whole(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"codex-long-{upstream}")
    out = run_codex(stack, tmp_path, created["key"], f"{upstream}/mock-chunks-400", "tell me a long story")
    words = out.split()
    assert words[0] == "Hello" and words[-1] == "w399" and len(words) == 400, out[-200:]
    row = rows_of(stack, created["id"], 1)[0]
    assert (row["status"], row["stream"], row["completion_tokens"]) == (200, True, 400), row


@pytest.mark.parametrize("upstream", ["oair", *UPSTREAMS])
def test_codex_runs_a_tool_and_answers_with_its_result(stack: Stack, tmp_path: Path, upstream: str) -> None:
    created = stack.create_key(f"codex-tool-{upstream}")
    model = f"{upstream}/mock-agent"
    out = run_codex(stack, tmp_path, created["key"], model, "run the marker command")
    # The model asked for a shell command, Codex ran it and sent its output back; the answer quotes it.
    assert out.startswith("The tool said:") and "mock-agent-ok" in out, out
    rows = rows_of(stack, created["id"], 2)
    assert all(r["status"] == 200 and r["endpoint"] == "responses" for r in rows), rows
