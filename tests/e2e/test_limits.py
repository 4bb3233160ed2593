"""Limits, budgets and prices as SDK users see them: OpenAI's rate-limit headers, 429s the SDKs raise
as RateLimitError with a retry-after, keys created with limits by the CLI, and the price registry."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import Stack


def test_rate_limit_headers_and_the_429_after_the_limit(client: openai.OpenAI):
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(
            model="oai/mock-limited", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-reset-requests"]
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="oai/mock-limited", messages=[{"role": "user", "content": "hi"}])
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.code == "rate_limit_exceeded"
    assert "requests per minute" in e.value.message


def test_the_anthropic_sdk_sees_the_same_limit_in_its_own_shape(stack: Stack):
    c = anthropic.Anthropic(base_url=stack.gateway_url, api_key=stack.key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as e:
        for _ in range(3):
            c.messages.create(model="oai/mock-limited", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "rate_limit_error"


def test_a_key_created_with_limits_by_the_cli_is_held_to_them(stack: Stack):
    created = stack.cli("keys", "create", "--name", "e2e-rpm-1", "--rpm", "1", "--json").stdout.splitlines()[-1]
    key = json.loads(created)
    assert key["limits"] == {"rpm": 1}
    stack.secrets["virtual key e2e-rpm-1"] = key["key"]
    stack.wait_until_key_accepted(key["key"])
    limited = openai.OpenAI(base_url=stack.base_url, api_key=key["key"], max_retries=0)
    limited.chat.completions.create(model="oai/mock-a", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="oai/mock-a", messages=[{"role": "user", "content": "two"}])
    listed = stack.cli("keys", "list").stdout
    assert "rpm=1" in listed


def test_the_price_registry_answers_from_the_command_line(stack: Stack):
    out = stack.cli("models", "gpt-4o-mini").stdout
    assert "openai/gpt-4o-mini" in out and "0.15" in out and "0.60" in out
