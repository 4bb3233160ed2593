"""Session fixtures for the end-to-end suite.

One session starts the real binaries, exactly as an operator would:

1. ``llm-proxy-mock 127.0.0.1:0`` — the mock upstream, speaking OpenAI, Anthropic, Gemini and GLM
   (faults and behaviours chosen by model name; it checks the Anthropic, Gemini and GLM keys);
2. a YAML config in a temporary directory (SQLite there, a free loopback port, debug logging);
3. ``llm-proxy keys create --name e2e --json`` — the virtual key the tests use;
4. ``llm-proxy serve`` with its stdout/stderr captured to a file, ready once ``GET /health`` is 200.

At the end the gateway gets SIGTERM and must exit 0 within 15 s; both processes are killed on
teardown whatever happened. Binaries come from ``LLM_PROXY_BIN`` / ``LLM_PROXY_MOCK_BIN``, or from
``$CARGO_TARGET_DIR/debug`` (``CARGO_TARGET_DIR`` defaults to ``<repo>/target``).
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]

# The upstream credentials the gateway holds; they must never leak anywhere a client or log reader
# sees. The mock checks the Anthropic, Gemini and GLM ones (GLM's signs a JWT; its secret half must
# never appear either).
PROVIDER_KEY = "sk-canary-provider-0123456789"
ANTHROPIC_KEY = "sk-ant-canary-0123456789"
ADMIN_PASSWORD = "canary-admin-password-0123"
GEMINI_KEY = "AIza-canary-0123456789"
GLM_KEY = "canaryid.canary-glm-secret-0123456789"

HEALTH_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 60.0
# How long a test waits for something that must happen (a log entry, a key taking effect): a
# deadline for a broken build, not a measure of speed, so long enough for a busy 2-core machine.
PATIENCE_S = 10.0

T = TypeVar("T")


def eventually(probe: Callable[[], T], message: str | Callable[[], str], within: float = PATIENCE_S) -> T:
    """Calls ``probe`` every 50 ms until it returns something truthy, and returns that; after
    ``within`` seconds the test fails with ``message`` (a callable may describe the last state).
    Tests wait on what a client can observe, never for a fixed time."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message() if callable(message) else message} (waited {within:.0f} s)")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Locating binaries and preparing processes
# --------------------------------------------------------------------------------------------


def _target_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target if target.is_absolute() else REPO / target


def _binary(env_var: str, name: str) -> Path:
    explicit = os.environ.get(env_var)
    path = Path(explicit) if explicit else _target_dir() / "debug" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(
            f"{name} binary not found at {path}: build it with "
            "`cargo build -p llm-proxy-server -p llm-proxy-testkit --bins` "
            f"or point {env_var} at it",
            returncode=2,
        )
    return path


def _clean_env() -> dict[str, str]:
    """The environment for the binaries: nothing from the developer's shell may change the config
    under test (``LLM_PROXY_*`` overrides, real provider keys that would enable real providers)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LLM_PROXY_") and not k.endswith("_API_KEY")
    }
    env.pop("RUST_LOG", None)
    env["NO_COLOR"] = "1"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(proc: subprocess.Popen | None) -> None:
    """Makes sure a process we started is gone."""
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line the process prints on stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                return proc.stdout.readline().decode(errors="replace")
            if proc.poll() is not None:
                break
    finally:
        sel.close()
    return ""


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no output>"


# --------------------------------------------------------------------------------------------
# The running stack
# --------------------------------------------------------------------------------------------


@dataclass
class LogExpectation:
    status: int | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: bool | None = None


@dataclass
class Stack:
    """The mock, the gateway, and what the tests learned while using them."""

    proxy_bin: Path
    workdir: Path
    config_path: Path
    log_path: Path
    env: dict[str, str]
    mock_url: str
    gateway_url: str
    master_key: str
    key: str = ""
    key_id: str = ""
    process: subprocess.Popen | None = None
    # Every secret that must never show up in logs or admin responses.
    secrets: dict[str, str] = field(default_factory=dict)
    # request id -> what the request log should say about it.
    expected_logs: dict[str, LogExpectation] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.gateway_url}/v1"

    # -- the CLI ------------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.proxy_bin), *args, "--config", str(self.config_path)],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`llm-proxy {' '.join(args)}` exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def create_key(self, name: str, models: list[str] | None = None, wait: bool = True) -> dict[str, Any]:
        """``llm-proxy keys create --json``; with ``wait``, returns once the running gateway accepts it."""
        args = ["keys", "create", "--name", name, "--json"]
        if models:
            args += ["--models", ",".join(models)]
        out = self.cli(*args).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, f"`keys create` printed nothing on stdout: {out!r}"
        created = json.loads(lines[-1])
        assert created.get("key") and created.get("id"), created
        self.secrets[f"virtual key {name!r}"] = created["key"]
        if wait and self.process is not None:
            self.wait_until_key_accepted(created["key"])
        return created

    def wait_until_key_accepted(self, key: str) -> None:
        last: list[httpx.Response] = []

        def accepted() -> bool:
            last[:] = [httpx.get(f"{self.base_url}/models", headers={"authorization": f"Bearer {key}"})]
            return last[0].status_code == 200

        eventually(
            accepted,
            lambda: "a key created with the CLI was not accepted by the running gateway "
            f"(last answer {last[0].status_code}: {last[0].text})",
        )

    # -- the mock -----------------------------------------------------------------------------

    def mock_requests(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.mock_url}/_mock/requests")
        r.raise_for_status()
        return r.json()

    def mock_stats(self) -> dict[str, int]:
        r = httpx.get(f"{self.mock_url}/_mock/stats")
        r.raise_for_status()
        return r.json()

    # -- the gateway --------------------------------------------------------------------------

    def admin_get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.gateway_url}{path}",
            params=params,
            headers={"authorization": f"Bearer {self.master_key}"},
            timeout=30,
        )

    def gateway_output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def expect_log(
        self,
        request_id: str | None,
        status: int | None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: bool | None = None,
    ) -> None:
        """Remembers a request the client made, for the request-log test."""
        assert request_id, "every gateway response carries x-request-id"
        self.expected_logs[request_id] = LogExpectation(status, prompt_tokens, completion_tokens, error)


def _config_yaml(db_path: Path, port: int, master_key: str, mock_addr: str) -> str:
    return f"""\
listen_addr: "127.0.0.1:{port}"
log_level: debug
database_url: "sqlite://{db_path}"
data_dir: "{db_path.parent}"
master_key: "{master_key}"
default_admin_password: "{ADMIN_PASSWORD}"
shutdown_grace_secs: 5
providers:
  mock:
    protocol: openai
    base_url: "http://{mock_addr}/v1"
    api_key: "{PROVIDER_KEY}"
    models:
      - {{ name: mock-a, alias: default }}
      - mock-b
      - mock-fail-500
      - mock-fail-429
      - mock-slow-200-chunks-50
      - mock-slow-50-cut-after-2
      - text-embedding-mock
  # One provider per wire protocol, all on the mock, serving whatever model the client names.
  oai:
    protocol: openai
    base_url: "http://{mock_addr}/v1"
    api_key: "{PROVIDER_KEY}"
  # The same server as a Responses API server too: Responses clients pass through to it.
  oair:
    protocol: openai
    base_url: "http://{mock_addr}/v1"
    api_key: "{PROVIDER_KEY}"
    responses_api: true
  claude:
    protocol: anthropic
    base_url: "http://{mock_addr}"
    api_key: "{ANTHROPIC_KEY}"
  gem:
    protocol: gemini
    base_url: "http://{mock_addr}"
    api_key: "{GEMINI_KEY}"
  zhipu:
    protocol: glm
    base_url: "http://{mock_addr}/api/paas/v4"
    api_key: "{GLM_KEY}"
rate_limits:
  per_model:
    "oai/mock-limited": {{ requests_per_minute: 2 }}
routes:
  - name: resilient
    targets: [{{ model: oai/mock-fail-500 }}]
    retries: 0
    fallbacks: [claude/mock-text]
"""


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    proxy_bin = _binary("LLM_PROXY_BIN", "llm-proxy")
    mock_bin = _binary("LLM_PROXY_MOCK_BIN", "llm-proxy-mock")
    workdir = tmp_path_factory.mktemp("llm-proxy-e2e")
    env = _clean_env()

    mock: subprocess.Popen | None = None
    gateway: subprocess.Popen | None = None
    mock_log = open(workdir / "mock.log", "wb")
    gateway_log_path = workdir / "gateway.log"
    gateway_log = open(gateway_log_path, "wb")
    try:
        # 1. The mock upstream on an ephemeral port; it prints "listening on ADDR".
        mock = subprocess.Popen(
            [
                str(mock_bin),
                "127.0.0.1:0",
                "--anthropic-key",
                ANTHROPIC_KEY,
                "--gemini-key",
                GEMINI_KEY,
                "--glm-key",
                GLM_KEY,
            ],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=mock_log,
        )
        line = _read_line(mock, timeout=15)
        assert line.startswith("listening on "), f"llm-proxy-mock did not start: {line!r}"
        mock_addr = line.removeprefix("listening on ").strip()

        # 2. The config.
        port = _free_port()
        master_key = "mk-e2e-" + secrets.token_hex(16)
        config_path = workdir / "llm-proxy.yaml"
        config_path.write_text(_config_yaml(workdir / "gateway.db", port, master_key, mock_addr))

        s = Stack(
            proxy_bin=proxy_bin,
            workdir=workdir,
            config_path=config_path,
            log_path=gateway_log_path,
            env=env,
            mock_url=f"http://{mock_addr}",
            gateway_url=f"http://127.0.0.1:{port}",
            master_key=master_key,
        )
        s.secrets["provider key"] = PROVIDER_KEY
        s.secrets["Anthropic key"] = ANTHROPIC_KEY
        s.secrets["Gemini key"] = GEMINI_KEY
        s.secrets["GLM key secret"] = GLM_KEY.split(".", 1)[1]
        s.secrets["master key"] = master_key
        s.secrets["admin password"] = ADMIN_PASSWORD

        # 3. The virtual key, created before the server starts (the CLI migrates the database).
        created = s.create_key("e2e", wait=False)
        s.key, s.key_id = created["key"], created["id"]

        # 4. The gateway.
        gateway = subprocess.Popen(
            [str(proxy_bin), "serve", "--config", str(config_path)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=gateway_log,
            stderr=subprocess.STDOUT,
        )
        s.process = gateway
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while True:
            if gateway.poll() is not None:
                pytest.fail(
                    f"llm-proxy serve exited with {gateway.returncode} before it was healthy:\n"
                    f"{_tail(gateway_log_path)}"
                )
            try:
                if httpx.get(f"{s.gateway_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"GET /health did not answer 200 within {HEALTH_TIMEOUT_S:.0f} s:\n"
                    f"{_tail(gateway_log_path)}"
                )
            time.sleep(0.1)

        yield s

        # Graceful shutdown: SIGTERM, exit code 0, within the deadline.
        gateway.send_signal(signal.SIGTERM)
        try:
            code = gateway.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"llm-proxy did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM")
        assert code == 0, (
            f"llm-proxy exited with {code} after SIGTERM (expected 0):\n{_tail(gateway_log_path)}"
        )
        # Whatever it logged while shutting down must be as clean as the rest.
        output = gateway_log_path.read_text(errors="replace")
        leaked = [name for name, value in s.secrets.items() if value in output]
        assert not leaked, f"the gateway's output (after shutdown) contains: {', '.join(leaked)}"
    finally:
        _kill(gateway)
        _kill(mock)
        if mock is not None and mock.stdout is not None:
            mock.stdout.close()
        mock_log.close()
        gateway_log.close()


@pytest.fixture(scope="session")
def client(stack: Stack) -> openai.OpenAI:
    """What an application would construct: the official SDK pointed at the gateway."""
    c = openai.OpenAI(base_url=stack.base_url, api_key=stack.key, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def restricted_key(stack: Stack) -> dict[str, Any]:
    """A key that may use only `default`, created with the CLI while the gateway runs."""
    return stack.create_key("e2e-default-only", models=["default"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and "stack" in getattr(item, "funcargs", {}):
        s: Stack = item.funcargs["stack"]
        report.sections.append(("gateway output (tail)", _tail(s.log_path, 40)))
    return report
