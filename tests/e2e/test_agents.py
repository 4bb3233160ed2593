"""Real agents as clients, unchanged but for a base URL and a key: Claude Code (``claude -p``) onto
an upstream of every protocol. Each run gets its own virtual key, so the gateway's log rows of that
run are exactly the rows of that key.

``tests/e2e/run.sh`` installs the pinned release from the npm registry and names it in
``E2E_CLAUDE``; without it these tests fail (they never skip).
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


def _claude() -> str:
    path = os.environ.get("E2E_CLAUDE", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("Claude Code is not installed: run the suite with tests/e2e/run.sh, which installs it")
    return path


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
