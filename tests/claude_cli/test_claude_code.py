"""Claude Code 2.1.197 completes a prompt and a tool round trip through the gateway, with no config
file: on the native route (Claude via InvokeModel, including its default model claude-opus-4-8 and
claude-sonnet-5, which Bedrock serves only through inference profiles) and on Converse (Qwen3 Coder)."""

import json

import pytest

NATIVE = {"InvokeModelWithResponseStream", "InvokeModel"}
ROUTES = [
    ("claude-opus-4-8", "us.anthropic.claude-opus-4-8", NATIVE),
    ("claude-sonnet-5", "us.anthropic.claude-sonnet-5", NATIVE),
    ("claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", NATIVE),
    ("qwen.qwen3-coder-480b-a35b-v1:0", "qwen.qwen3-coder-480b-a35b-v1:0", {"ConverseStream", "Converse"}),
]


@pytest.mark.parametrize("model,bedrock_id,operations", ROUTES)
def test_a_prompt(claude, sim, model, bedrock_id, operations):
    result = claude("say hi", model)
    assert result["is_error"] is False, result
    assert "You said: say hi" in result["result"]
    assert result["usage"]["output_tokens"] > 0
    calls = [r for r in sim() if r["operation"] in operations]
    assert calls and all(r["model_id"] == bedrock_id and r["status"] == 200 for r in calls)
    body = calls[-1]["body"]
    if model.startswith("claude"):
        assert body["anthropic_version"] == "bedrock-2023-05-31"
        assert "claude-code-20250219" not in body.get("anthropic_beta", []), "Claude Code's own betas are filtered"
        assert len(body["tools"]) > 5, "Claude Code's tools reach Bedrock"
    else:
        assert len(body["toolConfig"]["tools"]) > 5


@pytest.mark.parametrize("model,bedrock_id,operations", ROUTES)
def test_a_tool_round_trip(claude, sim, model, bedrock_id, operations):
    target = claude.project / "hello.txt"
    target.write_text("the magic word is PINEAPPLE\n")
    marker = "[sim tool=Read input='" + json.dumps({"file_path": str(target)}) + "']"
    result = claude(f"Read the file {marker}", model, "--allowedTools", "Read")
    assert result["is_error"] is False, result
    assert "PINEAPPLE" in result["result"], "the tool ran and its result went back through the gateway"
    assert result["num_turns"] >= 2
    calls = [r for r in sim() if r["operation"] in operations and r["status"] == 200]
    last = json.dumps(calls[-1]["body"])
    if model.startswith("claude"):
        assert '"type": "tool_result"' in last and "PINEAPPLE" in last
        if "thinking" in calls[-1]["body"] and calls[-1]["body"]["thinking"]["type"] == "enabled":
            # Claude Code turns thinking on for this model: the signed thinking block went back
            # unchanged (bedrock-sim checks the signature).
            assert '"type": "thinking"' in last
        else:
            # The newest models take adaptive thinking only (the model decides; the emulator does
            # not think unless told), and Claude Code sends it.
            assert calls[-1]["body"]["thinking"]["type"] == "adaptive"
    else:
        assert '"toolResult"' in last and "PINEAPPLE" in last
