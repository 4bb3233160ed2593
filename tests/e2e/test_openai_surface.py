"""The official `openai` SDK's images, audio and moderations calls against the real gateway, passed
through to the OpenAI-protocol mock (`oai`): what the SDK sends (JSON, or multipart uploads it
builds itself) must reach the upstream with the model rewritten, and what comes back (JSON,
audio bytes, text, SSE) must reach the SDK as the upstream sent it. A provider of another
protocol is refused by name.
"""

from __future__ import annotations

import base64
import json

import openai
import pytest

from conftest import Stack


def test_images_generate(client: openai.OpenAI, stack: Stack):
    raw = client.images.with_raw_response.generate(model="oai/gpt-image-1", prompt="a small red cat")
    image = raw.parse()
    assert base64.b64decode(image.data[0].b64_json).startswith(b"\x89PNG")
    assert image.usage is not None and image.usage.output_tokens == 272
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=4, completion_tokens=272)


def test_images_edit_uploads_the_image(client: openai.OpenAI):
    image = client.images.edit(
        model="oai/dall-e-2", image=("cat.png", b"\x89PNG not really", "image/png"), prompt="blue", response_format="url"
    )
    assert image.data[0].url.endswith(".png")


def test_speech_whole_and_streamed(client: openai.OpenAI, stack: Stack):
    audio = client.audio.speech.create(model="oai/tts-1", voice="alloy", input="Hello there")
    assert len(audio.content) == 4096
    with client.audio.speech.with_streaming_response.create(
        model="oai/tts-1-kb-2048", voice="alloy", input="A longer story"
    ) as resp:
        assert resp.headers["content-type"] == "audio/mpeg"
        pieces = list(resp.iter_bytes())
        stack.expect_log(resp.headers.get("x-request-id"), status=200)
    assert sum(len(p) for p in pieces) == 2048 * 1024


def test_transcriptions_and_translations(client: openai.OpenAI, stack: Stack):
    raw = client.audio.transcriptions.with_raw_response.create(
        model="oai/gpt-4o-transcribe", file=("speech.mp3", b"\x01" * 5000, "audio/mpeg")
    )
    t = raw.parse()
    assert t.text == "transcribed 5000 bytes of speech.mp3"
    stack.expect_log(raw.headers.get("x-request-id"), status=200, prompt_tokens=6, completion_tokens=5)
    text = client.audio.transcriptions.create(
        model="oai/whisper-1", file=("big.wav", b"\x02" * (2 * 1024 * 1024), "audio/wav"), response_format="text"
    )
    assert text.strip() == "transcribed 2097152 bytes of big.wav"
    verbose = client.audio.translations.create(
        model="oai/whisper-1", file=("fr.mp3", b"\x03" * 10, "audio/mpeg"), response_format="verbose_json"
    )
    assert verbose.text == "transcribed 10 bytes of fr.mp3"
    events = list(
        client.audio.transcriptions.create(
            model="oai/gpt-4o-mini-transcribe", file=("s.mp3", b"\x04" * 7, "audio/mpeg"), stream=True
        )
    )
    assert events[-1].type == "transcript.text.done" and events[-1].text == "transcribed 7 bytes of s.mp3"


def test_moderations(client: openai.OpenAI):
    m = client.moderations.create(model="oai/omni-moderation-latest", input=["hello", "flag-me please"])
    assert [r.flagged for r in m.results] == [False, True]
    assert m.results[1].categories.violence


@pytest.mark.parametrize("upstream", ["claude", "gem", "zhipu"])
def test_other_protocols_are_refused_by_name(client: openai.OpenAI, upstream: str):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model=f"{upstream}/mock-text", voice="alloy", input="hi")
    assert f"`{upstream}`" in str(e.value) and "/v1/audio/speech" in str(e.value)


def _client_with(stack: Stack, key: str) -> openai.OpenAI:
    """The SDK on a key of its own, sending new files to provider `oai` (the e2e gateway has several
    OpenAI-protocol providers, none named `openai`)."""
    return openai.OpenAI(
        base_url=stack.base_url,
        api_key=key,
        max_retries=0,
        timeout=30,
        default_headers={"x-llm-proxy-provider": "oai"},
    )


def test_files_and_a_batch_through_the_sdk_are_the_keys_alone(stack: Stack):
    owner = _client_with(stack, stack.create_key("e2e-batch-owner")["key"])
    stranger = _client_with(stack, stack.create_key("e2e-batch-stranger")["key"])
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"q{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
            }
        )
        + "\n"
        for i in range(3)
    ).encode()
    raw = owner.files.with_raw_response.create(file=("input.jsonl", lines, "application/jsonl"), purpose="batch")
    uploaded = raw.parse()
    assert (uploaded.purpose, uploaded.bytes, uploaded.filename) == ("batch", len(lines), "input.jsonl")
    assert raw.headers["x-llm-proxy-provider"] == "oai"
    stack.expect_log(raw.headers.get("x-request-id"), status=200)

    batch = owner.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "e2e"},
    )
    assert batch.status == "validating" and batch.metadata == {"job": "e2e"}
    done = owner.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    answers = [json.loads(line) for line in owner.files.content(done.output_file_id).text.splitlines()]
    assert [a["custom_id"] for a in answers] == ["q0", "q1", "q2"]
    assert answers[2]["response"]["body"]["choices"][0]["message"]["content"] == "batch: question 2"

    # The SDK's auto-pagination walks the gateway's lists.
    assert batch.id in [b.id for b in owner.batches.list(limit=1)]
    assert uploaded.id in [f.id for f in owner.files.list(purpose="batch")]

    # To another key none of it exists.
    for call in (
        lambda: stranger.files.retrieve(uploaded.id),
        lambda: stranger.files.content(done.output_file_id),
        lambda: stranger.batches.retrieve(batch.id),
        lambda: stranger.batches.cancel(batch.id),
        lambda: stranger.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert list(stranger.files.list()) == [] and list(stranger.batches.list()) == []

    deleted = owner.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(uploaded.id)


def test_files_refuse_a_provider_of_another_protocol_by_name(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(
            file=("a.jsonl", b"{}\n", "application/jsonl"),
            purpose="batch",
            extra_headers={"x-llm-proxy-provider": "claude"},
        )
    assert "`claude` speaks the anthropic protocol" in str(e.value)
