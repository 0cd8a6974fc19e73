"""The official Anthropic SDK's stream accumulator, fed the SSE that proxy-convert's stream state
machine produced from a ConverseStream, builds the same message as the non-streaming conversion of
the same request (ids and opaque redacted data aside: each call to the emulator issues new ones)."""

import anthropic
import pytest

SCENARIOS = ["text", "long_text", "thinking_tools", "redacted", "cache_usage", "stop_sequence", "max_tokens"]


def normalise(message):
    data = message.model_dump(exclude_none=True)
    for block in data["content"]:
        if block["type"] == "tool_use":
            block["id"] = "toolu_X"
        if block["type"] == "redacted_thinking":
            block["data"] = "X"
    return data


@pytest.mark.parametrize("name", SCENARIOS)
def test_stream_accumulates_to_the_non_streaming_message(server, scenarios, name):
    request = dict(scenarios[name]["request"])
    client = anthropic.Anthropic(base_url=f"{server}/{name}", api_key="sk-test", max_retries=0)
    whole = client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        final = stream.get_final_message()
    assert normalise(final) == normalise(whole)
    # Sanity: the scenario really has the content it is named for.
    kinds = [b.type for b in whole.content]
    if name == "thinking_tools":
        assert kinds[0] == "thinking" and kinds.count("tool_use") == 2
        assert final.content[0].signature == whole.content[0].signature != ""
        assert all(isinstance(b.input, dict) and b.input for b in final.content if b.type == "tool_use")
    if name == "redacted":
        assert kinds[0] == "redacted_thinking"
    if name == "cache_usage":
        assert final.usage.cache_read_input_tokens == 11 and final.usage.cache_creation_input_tokens == 22
    if name == "stop_sequence":
        assert final.stop_reason == "stop_sequence" and final.stop_sequence == "END"
    if name == "max_tokens":
        assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 5
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.input_tokens > 0 or name == "cache_usage"
    assert final.usage.output_tokens == whole.usage.output_tokens > 0


def test_text_stream_yields_text_deltas_in_order(server, scenarios):
    request = dict(scenarios["long_text"]["request"])
    client = anthropic.Anthropic(base_url=f"{server}/long_text", api_key="sk-test", max_retries=0)
    with client.messages.stream(**request) as stream:
        pieces = list(stream.text_stream)
    assert len(pieces) > 100
    assert "".join(pieces) == scenarios["long_text"]["message"]["content"][0]["text"]
