"""Instructions per request, counted by callgrind: an A/B of two gateway binaries that the noise of a
shared 2-core machine cannot move (the same binary and inputs give the same count to within ~1%).

    python3 bench/instructions.py GATEWAY_BIN MOCK_BIN [chat|stream|translated|responses|responses-translated] [N]

Starts the mock, then the gateway under `valgrind --tool=callgrind` (one runtime worker) twice: with
30 and with 30 + N sequential keep-alive requests through a virtual key, and prints the difference
divided by N (start-up and shutdown cancel out). `chat` is a plain chat completion, `stream` a
20-chunk passthrough stream, `translated` the same stream from an Anthropic upstream; `responses` is
the chat question as `POST /v1/responses` passed through to an upstream that serves it, and
`responses-translated` a Responses client's 20-chunk stream from the Anthropic upstream.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(pid: int, quiet_secs: float = 1.0, most_secs: float = 120.0) -> None:
    deadline = time.time() + most_secs
    last = cpu_ticks(pid)
    while time.time() < deadline:
        time.sleep(quiet_secs)
        now = cpu_ticks(pid)
        if now - last <= 1:
            return
        last = now


def instructions(gateway: str, mock_bin: str, mode: str, n: int) -> int:
    mport, gport = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="llmp-instr-")
    mock = subprocess.Popen([mock_bin, f"127.0.0.1:{mport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = f"""listen_addr: 127.0.0.1:{gport}
database_url: "sqlite://{d}/gw.db"
health_check: {{enabled: false}}
providers:
  mock: {{protocol: openai, base_url: "http://127.0.0.1:{mport}/v1", api_key: k, models: [mock-a, mock-chunks-20]}}
  anth: {{protocol: anthropic, base_url: "http://127.0.0.1:{mport}", api_key: k, models: [mock-chunks-20]}}
  mockr: {{protocol: openai, base_url: "http://127.0.0.1:{mport}/v1", api_key: k, responses_api: true}}
"""
    with open(f"{d}/c.yaml", "w") as f:
        f.write(cfg)
    env = dict(os.environ, LLM_PROXY_WORKERS="1", LLM_PROXY_LOG_LEVEL="warn")
    created = subprocess.run(
        [gateway, "keys", "create", "--name", "bench", "--config", f"{d}/c.yaml"], capture_output=True, text=True, env=env
    )
    key = created.stdout.strip().splitlines()[-1]
    out = f"{d}/callgrind.out"
    gw = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", gateway, "serve", "--config", f"{d}/c.yaml"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", gport, timeout=30)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        # Start-up work that runs beside the first requests (the tokenizer is built on its own
        # thread) must be over in both runs, or the longer run counts more of it: wait until the
        # gateway's CPU time stops moving.
        wait_idle(gw.pid)
        model = {
            "chat": "mock-a",
            "stream": "mock/mock-chunks-20",
            "translated": "anth/mock-chunks-20",
            "responses": "mockr/mock-a",
            "responses-translated": "anth/mock-chunks-20",
        }[mode]
        stream = mode not in ("chat", "responses")
        if mode.startswith("responses"):
            path = "/v1/responses"
            body = json.dumps({"model": model, "stream": stream, "input": "hello there"})
        else:
            path = "/v1/chat/completions"
            body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
        c = http.client.HTTPConnection("127.0.0.1", gport, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for _ in range(n):
            c.request("POST", path, body, headers)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
        time.sleep(1.5)  # the log writer's last batch
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait()
        mock.kill()
    print(f"callgrind profile of {n} requests: {out}", file=sys.stderr)
    with open(out) as f:
        m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    return int(m.group(1))


def main() -> None:
    gateway, mock_bin = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "chat"
    n = int(sys.argv[4]) if len(sys.argv) > 4 else (1000 if mode == "chat" else 300)
    base = instructions(gateway, mock_bin, mode, 30)
    more = instructions(gateway, mock_bin, mode, 30 + n)
    print(f"{mode}: {(more - base) / n / 1000:.1f} k instructions per request ({gateway})")


if __name__ == "__main__":
    main()
