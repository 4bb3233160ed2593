#!/usr/bin/env bash
# End-to-end suite: the official OpenAI and Anthropic Python SDKs and real agents (Claude Code)
# against the real llm-proxy binary and the mock upstream. Usage: tests/e2e/run.sh [pytest args...]
#   E2E_VENV          virtualenv to create/reuse (default: <repo>/.venv)
#   E2E_PYTHON        interpreter for a new venv (default: python3.11, else python3)
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target); the suite looks there too
#   LLM_PROXY_BIN, LLM_PROXY_MOCK_BIN  use these binaries instead (the build still runs)
#   E2E_AGENTS_DIR    where the agents are installed (default: ~/.cache/llm-proxy-agents)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

venv="${E2E_VENV:-$repo/.venv}"
python="${E2E_PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "e2e: creating virtualenv $venv with $python" >&2
    "$python" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$venv/bin/python" -m pip install -q -r tests/e2e/requirements.txt

# Real agents, pinned, from the npm registry, into a cache that outlives the run (Claude Code is
# a 240 MB binary). npm's install scripts stay off: the package's binary comes with it.
agents="${E2E_AGENTS_DIR:-$HOME/.cache/llm-proxy-agents}"
claude_code_version=2.1.197
codex_version=0.171.0
if [[ "$("$agents/node_modules/.bin/claude" --version 2>/dev/null | cut -d' ' -f1)" != "$claude_code_version" ||
      "$("$agents/node_modules/.bin/codex" --version 2>/dev/null)" != "codex-cli $codex_version" ]]; then
    echo "e2e: installing Claude Code $claude_code_version and Codex CLI $codex_version into $agents" >&2
    npm install --no-audit --no-fund --prefix "$agents" \
        "@anthropic-ai/claude-code@$claude_code_version" "@openai/codex@$codex_version" >&2
fi
export E2E_CLAUDE="$agents/node_modules/.bin/claude" E2E_CODEX="$agents/node_modules/.bin/codex"

echo "e2e: building llm-proxy and llm-proxy-mock" >&2
cargo build -p llm-proxy-server -p llm-proxy-testkit --bins

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
exec "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"
