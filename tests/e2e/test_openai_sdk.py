"""What a user of the official `openai` Python SDK notices when they point it at llm-proxy.

The tests run in file order against one gateway (see conftest.py); the request-log and
secret-hygiene checks at the end look back at everything the earlier tests did.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import PROVIDER_KEY, Stack, eventually

TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --------------------------------------------------------------------------------------------
# Chat completions
# --------------------------------------------------------------------------------------------


def test_a_chat_completion_comes_back_with_the_answer_usage_and_a_request_id(client, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there gateway"},
        ],
    )

    request_id = raw.headers.get("x-request-id")
    assert request_id, "every answer names its request id so users can quote it"

    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: hello there gateway"
    assert completion.choices[0].finish_reason == "stop"
    # The mock counts words: 3 in the system message + 3 in the user's, 3 completion tokens.
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 3)
    assert completion.usage.total_tokens == 9

    stack.expect_log(request_id, status=200, prompt_tokens=6, completion_tokens=3)


def test_a_stream_delivers_the_words_in_order_and_no_usage_unless_asked(client, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
    )
    chunks = list(raw.parse())

    assert chunks, "the stream produced no chunks"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert content_of(chunks) == "Hello w1 w2"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks), (
        "without stream_options.include_usage no chunk may carry usage "
        "(the gateway asks upstream for it, and must strip it again)"
    )
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=2, completion_tokens=3)


def test_a_stream_ends_with_a_usage_chunk_when_include_usage_is_set(client, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[{"role": "user", "content": "stream with usage please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())

    assert content_of(chunks) == "Hello w1 w2"
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has no choices"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 3)
    assert all(c.usage is None for c in chunks[:-1]), "only the final chunk carries usage"
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=4, completion_tokens=3)


def test_tools_images_and_unknown_fields_reach_the_upstream_unchanged_but_for_the_model(
    client, stack: Stack
):
    marker = f"tools-and-images-{time.monotonic_ns()}"
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages = [
        {"role": "system", "content": "You can look at pictures and call tools."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"What city is in this picture? {marker}"},
                {"type": "image_url", "image_url": {"url": TINY_PNG, "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "user", "content": "And is it warm?"},
    ]
    sent = {
        "model": "default",
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.25,
        "seed": 7,
    }
    extra = {"x_vendor_option": {"keep": True, "level": 3}}

    completion = client.chat.completions.create(**sent, extra_body=extra)
    assert completion.choices[0].message.content == "echo: And is it warm?"

    seen = [
        r
        for r in stack.mock_requests()
        if r["path"] == "/v1/chat/completions" and marker in json.dumps(r["body"])
    ]
    assert len(seen) == 1, f"expected exactly one upstream request carrying {marker}, saw {len(seen)}"
    upstream = seen[0]
    assert upstream["body"] == {**sent, **extra, "model": "mock-a"}, (
        "same-protocol passthrough forwards the body with only the model rewritten"
    )
    assert upstream["authorization"] == f"Bearer {PROVIDER_KEY}", (
        "the upstream sees the provider's key, never the client's"
    )


# --------------------------------------------------------------------------------------------
# Embeddings and models
# --------------------------------------------------------------------------------------------


def test_embeddings_come_back_one_per_input(client, stack: Stack):
    raw = client.embeddings.with_raw_response.create(model="text-embedding-mock", input=["a b", "c"])
    result = raw.parse()

    assert isinstance(result, CreateEmbeddingResponse)
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 256 and all(isinstance(x, float) for x in d.embedding) for d in result.data)
    assert result.usage.prompt_tokens == 3
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=3)


def test_the_model_list_names_aliases_and_provider_qualified_models(client):
    ids = {m.id for m in client.models.list()}
    assert "default" in ids
    assert "mock/mock-b" in ids


def test_a_model_can_be_retrieved_by_any_of_its_names(client):
    model = client.models.retrieve("mock/mock-b")
    assert (model.id, model.owned_by) == ("mock/mock-b", "mock")
    assert client.models.retrieve("default").owned_by == "mock"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_a_key_limited_to_some_models_lists_and_uses_only_those(stack: Stack, restricted_key):
    limited = openai.OpenAI(base_url=stack.base_url, api_key=restricted_key["key"], max_retries=0)

    ids = {m.id for m in limited.models.list()}
    assert "default" in ids
    assert "mock/mock-b" not in ids

    ok = limited.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "allowed"}]
    )
    assert ok.parse().choices[0].message.content == "echo: allowed"
    stack.expect_log(ok.headers.get("x-request-id"), status=200, prompt_tokens=1)

    with pytest.raises(openai.PermissionDeniedError) as denied:
        limited.chat.completions.create(model="mock-b", messages=[{"role": "user", "content": "not allowed"}])
    assert denied.value.status_code == 403
    stack.expect_log(denied.value.response.headers.get("x-request-id"), status=403)


def test_the_master_key_is_also_accepted_on_v1(stack: Stack):
    admin = openai.OpenAI(base_url=stack.base_url, api_key=stack.master_key, max_retries=0)
    raw = admin.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "from the operator"}]
    )
    assert raw.parse().choices[0].message.content == "echo: from the operator"
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=3)


# --------------------------------------------------------------------------------------------
# Errors surface as the SDK's typed exceptions
# --------------------------------------------------------------------------------------------


def test_a_wrong_key_is_an_authentication_error(stack: Stack):
    stranger = openai.OpenAI(
        base_url=stack.base_url, api_key="sk-e2e-not-a-key-4242424242", max_retries=0
    )
    stack.secrets["a wrong key a client sent"] = "sk-e2e-not-a-key-4242424242"
    with pytest.raises(openai.AuthenticationError) as err:
        stranger.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    assert "sk-e2e-not-a-key-4242424242" not in err.value.message
    # Strangers leave no request-log row; they are counted per address in /api/stats.
    stats = httpx.get(
        f"{stack.gateway_url}/api/stats", headers={"Authorization": f"Bearer {stack.master_key}"}
    ).json()
    assert stats["auth_failures"]["total"] >= 1, stats


def test_an_unknown_model_is_a_not_found_error(client, stack: Stack):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="no-such-model-anywhere", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 404
    assert "no-such-model-anywhere" in err.value.message
    stack.expect_log(err.value.response.headers.get("x-request-id"), status=404)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_upstream_500_is_an_internal_server_error_with_status_502(client, stack: Stack, stream: bool):
    # Streaming too: the gateway waits for the first upstream chunk, so a failure is a status code.
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(
            model="mock-fail-500", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert err.value.status_code == 502
    assert PROVIDER_KEY not in err.value.message
    stack.expect_log(err.value.response.headers.get("x-request-id"), status=502, error=True)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_upstream_429_is_a_rate_limit_error_with_retry_after(client, stack: Stack, stream: bool):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="mock-fail-429", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after"), "a 429 tells the client when to come back"
    stack.expect_log(err.value.response.headers.get("x-request-id"), status=429, error=True)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"model": "default", "messages": [', id="truncated-json"),
        pytest.param(b"model=default", id="not-json"),
        pytest.param(b'{"model": "default", "messages": "hi"}', id="messages-not-a-list"),
        pytest.param(b'{"messages": [{"role": "user", "content": "hi"}]}', id="no-model"),
        pytest.param(b'{"model": "default", "messages": []}', id="empty-messages"),
    ],
)
def test_a_malformed_body_is_a_400_in_openais_error_shape(stack: Stack, body: bytes):
    r = httpx.post(
        f"{stack.base_url}/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {stack.key}", "content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    payload = r.json()
    assert set(payload) == {"error"}, payload
    assert set(payload["error"]) == {"message", "type", "param", "code"}, payload
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"
    stack.expect_log(r.headers.get("x-request-id"), status=400)


# --------------------------------------------------------------------------------------------
# Streams that do not finish
# --------------------------------------------------------------------------------------------


def test_a_stream_cut_upstream_raises_an_api_error_after_the_chunks_that_arrived(client, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="mock-slow-50-cut-after-2",
        messages=[{"role": "user", "content": "this will break"}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["Hello", " w1"], "the two chunks sent before the cut reach the client first"
    stack.expect_log(raw.headers.get("x-request-id"), status=None, error=True)


def test_a_client_that_hangs_up_cancels_the_upstream_stream(stack: Stack):
    before = stack.mock_stats()["streams_cancelled"]
    with httpx.Client(timeout=30) as http:
        with http.stream(
            "POST",
            f"{stack.base_url}/chat/completions",
            headers={"authorization": f"Bearer {stack.key}"},
            json={
                "model": "mock-slow-200-chunks-50",
                "messages": [{"role": "user", "content": "a long story"}],
                "stream": True,
            },
        ) as resp:
            assert resp.status_code == 200
            request_id = resp.headers.get("x-request-id")
            first = next(line for line in resp.iter_lines() if line.startswith("data:"))
            assert "Hello" in first
        # Leaving both blocks closes the connection mid-stream (about 10 s of it remained; a stream
        # that ran to its end would count as completed, never as cancelled).
    eventually(
        lambda: stack.mock_stats()["streams_cancelled"] > before,
        "the upstream stream was still running after the client hung up",
    )
    stack.expect_log(request_id, status=499, error=True)


# --------------------------------------------------------------------------------------------
# Keys managed with the CLI while the gateway runs
# --------------------------------------------------------------------------------------------


def test_a_key_revoked_with_the_cli_stops_working_while_the_gateway_runs(stack: Stack):
    created = stack.create_key("e2e-to-revoke")  # waits until the running gateway accepts it
    doomed = openai.OpenAI(base_url=stack.base_url, api_key=created["key"], max_retries=0)
    assert doomed.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "still here"}]
    ).choices[0].message.content == "echo: still here"

    stack.cli("keys", "revoke", created["id"])

    # The README promises a second; a busy machine may take longer, and "never" must still fail.
    def refused() -> bool:
        try:
            doomed.models.list()
        except openai.AuthenticationError as e:
            assert e.status_code == 401
            return True
        return False

    eventually(refused, "a revoked key still worked after `keys revoke`")
    with pytest.raises(openai.AuthenticationError):
        doomed.chat.completions.create(model="default", messages=[{"role": "user", "content": "gone"}])

    listed = json.loads(stack.cli("keys", "list", "--json").stdout)
    mine = [k for k in listed if k["id"] == created["id"]]
    assert len(mine) == 1 and mine[0].get("revoked_at"), mine


# --------------------------------------------------------------------------------------------
# Looking back: the request log and secret hygiene
# --------------------------------------------------------------------------------------------


def all_logs(stack: Stack) -> tuple[list[dict], list[str]]:
    """Every request-log entry, following `next` cursors; also the raw response bodies."""
    entries: list[dict] = []
    bodies: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        r = stack.admin_get("/api/logs", **params)
        assert r.status_code == 200, r.text
        bodies.append(r.text)
        page = r.json()
        entries.extend(page["data"])
        cursor = page.get("next")
        if not cursor:
            return entries, bodies


def test_the_request_log_records_every_request_the_client_saw(client, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "log me"}]
    )
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=2, completion_tokens=3)

    missing: list[str] = []

    def everything_logged() -> dict[str, dict] | None:
        entries, _ = all_logs(stack)
        by_id = {e["request_id"]: e for e in entries}
        missing[:] = [rid for rid in stack.expected_logs if rid not in by_id]
        return None if missing else by_id

    by_id = eventually(everything_logged, lambda: f"no request-log entry for: {missing}")

    for rid, want in stack.expected_logs.items():
        entry = by_id[rid]
        assert isinstance(entry["latency_ms"], int) and entry["latency_ms"] >= 0, entry
        assert "status" in entry and "prompt_tokens" in entry, entry
        if want.status is not None:
            assert entry["status"] == want.status, entry
        if want.prompt_tokens is not None:
            assert entry["prompt_tokens"] == want.prompt_tokens, entry
        if want.completion_tokens is not None:
            assert entry["completion_tokens"] == want.completion_tokens, entry
        if want.error is True:
            assert entry["status"] != 200 and entry.get("error_kind"), entry
        if want.status == 200:
            assert entry.get("error_kind") is None, entry

    # Newest first (`by_id` keeps the order the log listed them in).
    times = [e["created_at"] for e in by_id.values()]
    assert times == sorted(times, reverse=True)


def test_the_request_log_is_for_the_master_key_only(stack: Stack):
    r = httpx.get(
        f"{stack.gateway_url}/api/logs", headers={"authorization": f"Bearer {stack.key}"}, timeout=30
    )
    assert r.status_code in (401, 403), r.text
    r = httpx.get(f"{stack.gateway_url}/api/logs", timeout=30)
    assert r.status_code == 401, r.text


def test_the_readme_curl_calls_work(stack: Stack):
    """The README's curl examples, run as written (with this gateway's address and key)."""
    body = '{"model": "default", "messages": [{"role": "user", "content": "Hello"}]}'
    plain = subprocess.run(
        ["curl", "-sS", f"{stack.gateway_url}/v1/chat/completions",
         "-H", f"Authorization: Bearer {stack.key}", "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=30, check=True,
    )
    answer = json.loads(plain.stdout)
    assert answer["choices"][0]["message"]["content"] == "echo: Hello"

    streamed = subprocess.run(
        ["curl", "-sSN", f"{stack.gateway_url}/v1/chat/completions",
         "-H", f"Authorization: Bearer {stack.key}", "-H", "Content-Type: application/json",
         "-d", body.replace('"messages"', '"stream": true, "messages"')],
        capture_output=True, text=True, timeout=30, check=True,
    )
    events = [line[len("data: "):] for line in streamed.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "Hello w1 w2"


def test_zz_no_secret_ever_appears_in_the_gateway_output_or_the_request_log(stack: Stack):
    """Runs last: debug logging was on for everything above."""
    assert len(stack.secrets) >= 4, stack.secrets.keys()
    output = stack.gateway_output()
    assert output.strip(), "the gateway logged nothing at all at debug level: is the capture working?"
    _, bodies = all_logs(stack)
    listed = stack.cli("keys", "list", "--json").stdout

    places = {"gateway stdout/stderr": output, "/api/logs responses": "\n".join(bodies), "keys list --json": listed}
    leaks = [
        f"{secret} in {place}"
        for secret, value in stack.secrets.items()
        for place, text in places.items()
        if value in text
    ]
    assert not leaks, "secrets leaked: " + "; ".join(leaks)

