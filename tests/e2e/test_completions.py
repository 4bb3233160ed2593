"""The official `openai` SDK's legacy Completions API (`client.completions`) against the real gateway,
onto an upstream of every protocol: the OpenAI-protocol mock serves `/v1/completions` itself
(passthrough); Anthropic, Gemini and GLM chat models get the prompt as one user message. Answers
whole and streamed, and what a chat model cannot do refused by name.
"""

from __future__ import annotations

import openai
import pytest

from conftest import Stack

UPSTREAMS = ["oai", "claude", "gem", "zhipu"]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_create_and_stream(client: openai.OpenAI, stack: Stack, upstream: str):
    raw = client.completions.with_raw_response.create(
        model=f"{upstream}/mock-text", prompt="Say this is a test", max_tokens=7, temperature=0
    )
    c = raw.parse()
    assert c.object == "text_completion" and c.id.startswith("cmpl-")
    assert [(ch.index, ch.text, ch.finish_reason) for ch in c.choices] == [(0, "echo: Say this is a test", "stop")]
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens == 3
    stack.expect_log(raw.headers.get("x-request-id"), status=200, completion_tokens=3)

    chunks = list(
        client.completions.create(
            model=f"{upstream}/mock-text",
            prompt="Say this is a test",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "Hello w1 w2"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3

    plain = list(client.completions.create(model=f"{upstream}/mock-text", prompt="Say this", stream=True))
    assert all(ch.usage is None for ch in plain), "no usage chunk unless asked for"


@pytest.mark.parametrize("upstream", ["claude", "gem", "zhipu"])
@pytest.mark.parametrize(
    "param,kwargs",
    [
        ("n", {"n": 2}),
        ("best_of", {"best_of": 2}),
        ("echo", {"echo": True}),
        ("suffix", {"suffix": " The end."}),
        ("logprobs", {"logprobs": 1}),
        ("prompt", {"prompt": ["one", "two"]}),
        ("prompt", {"prompt": [1212, 318]}),
    ],
)
def test_what_a_chat_model_cannot_do_is_refused_by_name(
    client: openai.OpenAI, upstream: str, param: str, kwargs: dict
):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(**{"model": f"{upstream}/mock-text", "prompt": "x", **kwargs})
    assert e.value.param == param and param in e.value.message


def test_an_openai_protocol_upstream_does_it_all(client: openai.OpenAI):
    c = client.completions.create(model="oai/mock-text", prompt=["one", "two"], n=2, echo=True, best_of=2)
    assert [(ch.index, ch.text) for ch in c.choices] == [
        (0, "oneecho: one"),
        (1, "oneecho: one"),
        (2, "twoecho: two"),
        (3, "twoecho: two"),
    ]
