"""The official `openai` SDK's Responses API (`client.responses`) against the real gateway, onto an
upstream of every protocol: answers whole and streamed, function calls across turns (continued with
`previous_response_id`, and with the whole conversation sent again), structured output, and answers
that only their key can read.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import Stack

# `oair` is the mock's own Responses API (passthrough); the others are translated.
UPSTREAMS = ["oair", "oai", "claude", "gem", "zhipu"]
TOOL_ARGUMENTS = '{"location": "Paris, France", "unit": "celsius"}'
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_create_and_stream(client: openai.OpenAI, stack: Stack, upstream: str):
    raw = client.responses.with_raw_response.create(
        model=f"{upstream}/mock-text", input="Say hello", instructions="Be brief."
    )
    r = raw.parse()
    assert r.status == "completed" and r.output_text == "echo: Say hello"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    stack.expect_log(raw.headers.get("x-request-id"), status=200)

    with client.responses.stream(model=f"{upstream}/mock-text", input="Say hello") as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(deltas) == "Hello w1 w2" == final.output_text
    assert final.status == "completed" and final.usage.output_tokens == 3


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_function_calls_across_turns(client: openai.OpenAI, upstream: str):
    first = client.responses.create(model=f"{upstream}/mock-tool", input="Weather in Paris?", tools=TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == json.loads(TOOL_ARGUMENTS)
    result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": "15 degrees"}

    # Continued by id: the gateway (or the upstream holding it) supplies the conversation.
    by_id = client.responses.create(
        model=f"{upstream}/mock-echo", previous_response_id=first.id, input=[result], tools=TOOLS
    )
    summary = json.loads(by_id.output_text)
    assert summary["tool_results"] == ["15 degrees"] and summary["messages"] == 3, summary

    # Or sent whole, as stateless clients (`store: false`, Codex CLI) do.
    whole = client.responses.create(
        model=f"{upstream}/mock-echo",
        input=[{"role": "user", "content": "Weather in Paris?"}, *[o.model_dump() for o in calls], result],
        tools=TOOLS,
        store=False,
    )
    assert json.loads(whole.output_text) == summary


@pytest.mark.parametrize("upstream", ["oai", "claude", "gem"])
def test_structured_output_reaches_the_upstream_as_its_own_schema(
    client: openai.OpenAI, stack: Stack, upstream: str
):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    marker = f"structured-{upstream}"
    r = client.responses.create(
        model=f"{upstream}/mock-text",
        input=marker,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )
    assert r.text.format.type == "json_schema"
    sent = [q for q in stack.mock_requests() if marker in json.dumps(q["body"])][-1]["body"]
    shape = {
        "oai": lambda b: b["response_format"]["json_schema"]["schema"],
        "claude": lambda b: b["output_config"]["format"]["schema"],
        "gem": lambda b: b["generationConfig"]["responseJsonSchema"],
    }[upstream]
    assert shape(sent) == schema, sent


def test_another_key_cannot_read_or_continue_a_response(client: openai.OpenAI, stack: Stack):
    made = client.responses.create(model="claude/mock-text", input="secret plans")
    assert client.responses.retrieve(made.id).output_text == made.output_text
    other_key = stack.create_key("responses-other")["key"]
    other = openai.OpenAI(base_url=stack.base_url, api_key=other_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="claude/mock-text", input="more", previous_response_id=made.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(made.id)
    items = client.responses.input_items.list(made.id)
    assert [i.type for i in items.data] == ["message"]
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
