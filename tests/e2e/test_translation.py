"""Both official SDKs against every upstream protocol, through the real gateway.

The `openai` SDK calls `/v1/chat/completions` and the `anthropic` SDK calls `/v1/messages`; each
reaches four upstreams of the mock, one per wire protocol: `oai` (OpenAI), `claude` (Anthropic),
`gem` (Gemini) and `zhipu` (ZhipuAI GLM, JWT-authenticated). Same-protocol pairs are passthrough,
the others are translated. Every scenario must parse in the SDK without error and show the user
what the upstream said: text, streamed text, tool calls with their arguments byte for byte, images
and tool results delivered, stop reasons, usage including cached tokens, reasoning.
"""

from __future__ import annotations

import json
import subprocess

import anthropic
import httpx
import openai
import pytest

from conftest import Stack

UPSTREAMS = ["oai", "claude", "gem", "zhipu"]

# What the mock's `tool` models call, byte for byte (see llm-proxy-testkit's script.rs).
TOOL_ARGUMENTS = '{"location": "Paris, France", "unit": "celsius"}'
SECOND_TOOL_ARGUMENTS = '{"location": "Tokyo, Japan", "unit": "celsius"}'
REASONING = "Let me think about this."

TINY_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
IMAGE_URL = "https://example.com/cat.png"

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": OPENAI_TOOLS[0]["function"]["parameters"],
    }
]


def same_arguments(upstream: str, got: str, want: str, streamed: bool = True) -> None:
    """Arguments arrive byte for byte where the upstream sends them as text (OpenAI, GLM, and
    Anthropic's streamed `partial_json`). Gemini, and Anthropic's whole answers, carry them as a JSON
    object the gateway can only re-serialise, so there they must mean the same."""
    if upstream == "gem" or (upstream == "claude" and not streamed):
        assert json.loads(got) == json.loads(want)
    else:
        assert got == want


@pytest.fixture(scope="session")
def claude_client(stack: Stack) -> anthropic.Anthropic:
    """What an application using the Anthropic SDK (Claude Code among them) constructs."""
    c = anthropic.Anthropic(base_url=stack.gateway_url, api_key=stack.key, max_retries=0, timeout=30)
    yield c
    c.close()


# --------------------------------------------------------------------------------------------
# openai SDK → every upstream
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_text_streamed_and_not(client: openai.OpenAI, stack: Stack, upstream: str):
    model = f"{upstream}/mock-text"
    messages = [{"role": "user", "content": "Say hello"}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    whole = raw.parse()
    assert whole.choices[0].message.content == "echo: Say hello", "the mock answers a whole request with an echo"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=whole.usage.prompt_tokens)

    chunks = list(
        client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "Hello w1 w2", "the mock streams three chunks"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, "include_usage adds a last usage chunk"
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1, "every chunk of a stream has the same id"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_streamed_tool_call_arrives_in_fragments_byte_for_byte(client: openai.OpenAI, upstream: str):
    stream = client.chat.completions.create(
        model=f"{upstream}/mock-tool",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=OPENAI_TOOLS,
        stream=True,
    )
    names, ids, fragments, finish = [], [], [], []
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            assert call.index == 0
            if call.id:
                ids.append(call.id)
            if call.function and call.function.name:
                names.append(call.function.name)
            if call.function and call.function.arguments:
                fragments.append(call.function.arguments)
        if choice.finish_reason:
            finish.append(choice.finish_reason)
    assert names == ["get_weather"] and len(ids) == 1 and ids[0]
    same_arguments(upstream, "".join(fragments), TOOL_ARGUMENTS)
    if upstream != "gem":
        assert len(fragments) > 1, "argument fragments are forwarded as they come, not gathered"
    assert finish == ["tool_calls"]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_parallel_tool_calls(client: openai.OpenAI, upstream: str):
    done = client.chat.completions.create(
        model=f"{upstream}/mock-tools-2",
        messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}],
        tools=OPENAI_TOOLS,
    )
    calls = done.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert len({c.id for c in calls}) == 2, "each call has its own id"
    same_arguments(upstream, calls[0].function.arguments, TOOL_ARGUMENTS, streamed=False)
    same_arguments(upstream, calls[1].function.arguments, SECOND_TOOL_ARGUMENTS, streamed=False)
    assert done.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_system_images_tools_and_tool_results_reach_the_upstream(client: openai.OpenAI, upstream: str):
    done = client.chat.completions.create(
        model=f"{upstream}/mock-echo",
        max_tokens=321,
        tools=OPENAI_TOOLS,
        messages=[
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{TINY_PNG_B64}"}},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_w1", "content": "21C and sunny"},
            {"role": "user", "content": "And now?"},
        ],
    )
    seen = json.loads(done.choices[0].message.content)
    assert seen["system"] == "You are terse."
    assert seen["images"] == 2
    assert seen["tools"] == ["get_weather"]
    assert seen["tool_results"] == ["21C and sunny"]
    assert seen["max_tokens"] == 321
    assert seen["last_user_text"] == "And now?"


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("model,finish", [("mock-max-tokens", "length"), ("mock-refuse", "content_filter")])
def test_openai_stop_reasons(client: openai.OpenAI, upstream: str, model: str, finish: str):
    done = client.chat.completions.create(
        model=f"{upstream}/{model}", messages=[{"role": "user", "content": "Go on"}]
    )
    assert done.choices[0].finish_reason == finish
    stream = client.chat.completions.create(
        model=f"{upstream}/{model}", messages=[{"role": "user", "content": "Go on"}], stream=True
    )
    assert [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason] == [finish]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_cached_tokens_and_reasoning_are_reported(client: openai.OpenAI, upstream: str):
    done = client.chat.completions.create(
        model=f"{upstream}/mock-cache", messages=[{"role": "user", "content": "Again"}]
    )
    assert done.usage.prompt_tokens_details.cached_tokens == 1000
    assert done.usage.prompt_tokens >= 1000, "prompt_tokens counts cached tokens too"

    done = client.chat.completions.create(
        model=f"{upstream}/mock-reason", messages=[{"role": "user", "content": "Think"}]
    )
    assert done.choices[0].message.content
    assert (done.choices[0].message.model_extra or {}).get("reasoning_content") == REASONING
    chunks = list(
        client.chat.completions.create(
            model=f"{upstream}/mock-reason", messages=[{"role": "user", "content": "Think"}], stream=True
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning == REASONING


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_upstream_errors_keep_their_meaning(client: openai.OpenAI, upstream: str):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=f"{upstream}/mock-fail-429", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers.get("retry-after") == "7"
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model=f"{upstream}/mock-fail-500", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=f"{upstream}/mock-fail-400", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_stream_cut_upstream_ends_in_an_error_not_a_clean_end(client: openai.OpenAI, upstream: str):
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=f"{upstream}/mock-slow-50-cut-after-2",
            messages=[{"role": "user", "content": "this will break"}],
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 2, "what arrived before the cut reaches the client first"


# --------------------------------------------------------------------------------------------
# anthropic SDK → /v1/messages → every upstream
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_text_streamed_and_not(claude_client: anthropic.Anthropic, stack: Stack, upstream: str):
    model = f"{upstream}/mock-text"
    messages = [{"role": "user", "content": "Say hello"}]
    raw = claude_client.messages.with_raw_response.create(model=model, max_tokens=100, messages=messages)
    whole = raw.parse()
    assert whole.type == "message" and whole.role == "assistant"
    assert [b.type for b in whole.content] == ["text"]
    assert whole.content[0].text == "echo: Say hello"
    assert whole.stop_reason == "end_turn"
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    stack.expect_log(raw.headers.get("x-request-id"), status=200)

    with claude_client.messages.stream(model=model, max_tokens=100, messages=messages) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == "Hello w1 w2"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_beta_messages_with_betas_and_mid_conversation_system(
    claude_client: anthropic.Anthropic, stack: Stack, upstream: str
):
    model = f"{upstream}/mock-echo"
    request = dict(
        model=model,
        max_tokens=200,
        betas=[CONTEXT_MANAGEMENT_BETA, "interleaved-thinking-2025-05-14"],
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[
            {"role": "user", "content": "Hello"},
            {"role": "system", "content": "Answer in French."},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "More"},
        ],
        thinking={"type": "adaptive"},
        metadata={"user_id": "u-e2e"},
    )
    whole = claude_client.beta.messages.create(**request)
    summary = json.loads(whole.content[-1].text)
    # Every upstream got both instructions: in place or folded into its system prompt.
    assert summary["system"] == "Be brief.\nAnswer in French.", summary
    assert summary["last_user_text"] == "More"
    with claude_client.beta.messages.stream(**request) as s:
        streamed = "".join(s.text_stream)
    assert json.loads(streamed)["system"] == summary["system"]
    sent = [r for r in stack.mock_requests() if r["body"].get("context_management")]
    # Only Anthropic upstreams get it, and with the betas that make it valid (the mock refuses it
    # otherwise); elsewhere it has no meaning and is dropped.
    assert all(r["path"] == "/v1/messages" for r in sent), [r["path"] for r in sent]
    assert all(CONTEXT_MANAGEMENT_BETA in r["headers"]["anthropic_beta"] for r in sent), sent
    if upstream == "claude":
        assert sent, "the passthrough forwarded context_management as it came"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_streamed_tool_use_arrives_in_fragments_byte_for_byte(
    claude_client: anthropic.Anthropic, upstream: str
):
    fragments, kinds = [], []
    with claude_client.messages.stream(
        model=f"{upstream}/mock-tool",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as s:
        for event in s:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                fragments.append(event.delta.partial_json)
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    tool_uses = [b for b in final.content if b.type == "tool_use"]
    assert len(tool_uses) == 1 and tool_uses[0].name == "get_weather" and tool_uses[0].id
    assert tool_uses[0].input == json.loads(TOOL_ARGUMENTS)
    same_arguments(upstream, "".join(fragments), TOOL_ARGUMENTS)
    if upstream != "gem":
        assert len([f for f in fragments if f]) > 1, "argument fragments are forwarded as they come"
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_parallel_tool_use(claude_client: anthropic.Anthropic, upstream: str):
    msg = claude_client.messages.create(
        model=f"{upstream}/mock-tools-2",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}],
    )
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [json.loads(TOOL_ARGUMENTS), json.loads(SECOND_TOOL_ARGUMENTS)]
    assert len({u.id for u in uses}) == 2
    assert msg.stop_reason == "tool_use"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_system_images_tools_and_tool_results_reach_the_upstream(
    claude_client: anthropic.Anthropic, upstream: str
):
    msg = claude_client.messages.create(
        model=f"{upstream}/mock-echo",
        max_tokens=321,
        system="You are terse.",
        tools=ANTHROPIC_TOOLS,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": TINY_PNG_B64}},
                    {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": json.loads(TOOL_ARGUMENTS)}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "21C and sunny"},
                    {"type": "text", "text": "And now?"},
                ],
            },
        ],
    )
    seen = json.loads(msg.content[0].text)
    assert seen["system"] == "You are terse."
    assert seen["images"] == 2
    assert seen["tools"] == ["get_weather"]
    assert seen["tool_results"] == ["21C and sunny"]
    assert seen["max_tokens"] == 321
    assert seen["last_user_text"] == "And now?"


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("model,stop", [("mock-max-tokens", "max_tokens"), ("mock-refuse", "refusal")])
def test_anthropic_stop_reasons(claude_client: anthropic.Anthropic, upstream: str, model: str, stop: str):
    msg = claude_client.messages.create(
        model=f"{upstream}/{model}", max_tokens=50, messages=[{"role": "user", "content": "Go on"}]
    )
    assert msg.stop_reason == stop
    with claude_client.messages.stream(
        model=f"{upstream}/{model}", max_tokens=50, messages=[{"role": "user", "content": "Go on"}]
    ) as s:
        assert s.get_final_message().stop_reason == stop


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_cached_tokens_and_thinking_are_reported(claude_client: anthropic.Anthropic, upstream: str):
    msg = claude_client.messages.create(
        model=f"{upstream}/mock-cache", max_tokens=50, messages=[{"role": "user", "content": "Again"}]
    )
    assert msg.usage.cache_read_input_tokens == 1000
    if upstream == "claude":
        assert msg.usage.cache_creation_input_tokens == 200

    msg = claude_client.messages.create(
        model=f"{upstream}/mock-reason", max_tokens=50, messages=[{"role": "user", "content": "Think"}]
    )
    assert msg.content[0].type == "thinking" and msg.content[0].thinking == REASONING
    assert msg.content[-1].type == "text" and msg.content[-1].text
    with claude_client.messages.stream(
        model=f"{upstream}/mock-reason", max_tokens=50, messages=[{"role": "user", "content": "Think"}]
    ) as s:
        final = s.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking == REASONING


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_count_tokens(claude_client: anthropic.Anthropic, upstream: str):
    counted = claude_client.messages.count_tokens(
        model=f"{upstream}/mock-text",
        system="You are terse.",
        messages=[{"role": "user", "content": "How many tokens is this sentence?"}],
    )
    assert counted.input_tokens > 0


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_upstream_errors_keep_their_meaning(claude_client: anthropic.Anthropic, upstream: str):
    with pytest.raises(anthropic.RateLimitError) as e:
        claude_client.messages.create(
            model=f"{upstream}/mock-fail-429", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.response.headers.get("retry-after") == "7"
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as e:
        claude_client.messages.create(
            model=f"{upstream}/mock-fail-500", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 502 and e.value.body["error"]["type"] == "api_error"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_stream_cut_upstream_ends_in_an_error_event(claude_client: anthropic.Anthropic, upstream: str):
    received = []
    with pytest.raises(anthropic.APIError):
        with claude_client.messages.stream(
            model=f"{upstream}/mock-slow-50-cut-after-2",
            max_tokens=100,
            messages=[{"role": "user", "content": "this will break"}],
        ) as s:
            for text in s.text_stream:
                received.append(text)
    assert len(received) == 2


def test_anthropic_errors_are_in_anthropics_shape(claude_client: anthropic.Anthropic, stack: Stack):
    with pytest.raises(anthropic.NotFoundError) as e:
        claude_client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"

    bad = anthropic.Anthropic(base_url=stack.gateway_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="claude/mock-text", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "authentication_error"

    r = httpx.post(
        f"{stack.gateway_url}/v1/messages",
        headers={"x-api-key": stack.key, "anthropic-version": "2023-06-01"},
        json={"model": "claude/mock-text", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}


def test_anthropic_sdk_with_a_bearer_token_is_accepted_too(stack: Stack):
    c = anthropic.Anthropic(base_url=stack.gateway_url, auth_token=stack.key, api_key=None, max_retries=0)
    msg = c.messages.create(model="oai/mock-text", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert msg.content[0].text


def test_glm_tokens_are_signed_once_and_reused(client: openai.OpenAI, stack: Stack):
    for _ in range(3):
        client.chat.completions.create(model="zhipu/mock-text", messages=[{"role": "user", "content": "x"}])
    assert stack.mock_stats()["glm_tokens_seen"] == 1, "one JWT, cached, for every GLM request"


# --------------------------------------------------------------------------------------------
# Embeddings onto each protocol
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", ["oai", "gem", "zhipu"])
def test_embeddings_onto_every_protocol_that_has_them(client: openai.OpenAI, upstream: str):
    # The SDK asks for base64 unless told otherwise; both encodings must decode to the same floats.
    default = client.embeddings.create(model=f"{upstream}/text-embedding-mock", input=["alpha", "beta"])
    floats = client.embeddings.create(
        model=f"{upstream}/text-embedding-mock", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) > 0 and all(isinstance(x, float) for x in d.embedding) for d in default.data)
    for a, b in zip(default.data, floats.data):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)


def test_embeddings_on_a_protocol_without_them_are_a_clear_400(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="claude/text-embedding-mock", input="alpha")
    assert "embeddings" in e.value.message.lower()


def test_the_readme_messages_curl_call_works(stack: Stack):
    """The README's `/v1/messages` curl example, run as written (this gateway's address, key, a model)."""
    body = '{"model": "oai/mock-text", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}'
    headers = ["-H", f"x-api-key: {stack.key}", "-H", "anthropic-version: 2023-06-01", "-H", "Content-Type: application/json"]
    plain = subprocess.run(
        ["curl", "-sS", f"{stack.gateway_url}/v1/messages", *headers, "-d", body],
        capture_output=True, text=True, timeout=30, check=True,
    )
    answer = json.loads(plain.stdout)
    assert answer["type"] == "message" and answer["content"][0]["text"] == "echo: Hello"

    streamed = subprocess.run(
        ["curl", "-sSN", f"{stack.gateway_url}/v1/messages", *headers,
         "-d", body.replace('"messages"', '"stream": true, "messages"')],
        capture_output=True, text=True, timeout=30, check=True,
    )
    names = [line[len("event: "):] for line in streamed.stdout.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "[DONE]" not in streamed.stdout, "Anthropic streams end with message_stop, not [DONE]"
