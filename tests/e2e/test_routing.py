"""A route as SDK users see it: a failing first choice falls over before the client sees a byte,
and the response says who served it."""

from __future__ import annotations

import anthropic
import openai

from conftest import Stack


def test_a_failing_deployment_falls_over_invisibly_for_both_sdks(client: openai.OpenAI, stack: Stack):
    raw = client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert raw.parse().choices[0].message.content == "echo: Say hello"
    assert raw.headers["x-llm-proxy-provider"] == "claude"
    assert raw.headers["x-llm-proxy-model"] == "mock-text"
    assert raw.headers["x-llm-proxy-attempts"] == "2"

    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="resilient", messages=[{"role": "user", "content": "Say hello"}], stream=True
        )
        if c.choices
    )
    assert streamed == "Hello w1 w2", "the failed attempt leaves no trace in the stream"

    claude = anthropic.Anthropic(base_url=stack.gateway_url, api_key=stack.key, max_retries=0)
    with claude.messages.stream(
        model="resilient", max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
    ) as s:
        assert "".join(s.text_stream) == "Hello w1 w2"
        assert s.get_final_message().stop_reason == "end_turn"
