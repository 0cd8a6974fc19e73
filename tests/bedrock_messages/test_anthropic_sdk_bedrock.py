"""The official Anthropic Python SDK's Bedrock clients against bedrock-sim: `AnthropicBedrockMantle`
(Mantle's Messages API, SigV4 `bedrock-mantle` or a Bedrock API key) through its base-URL override,
and `AnthropicBedrock` (InvokeModel) on a profile-only model."""

import anthropic
import pytest
from anthropic.lib.bedrock import AnthropicBedrock, AnthropicBedrockMantle

OPUS = "anthropic.claude-opus-4-8"


@pytest.fixture(params=["sigv4", "api_key"])
def mantle_client(sim_url, request):
    auth = ({"aws_access_key": "AKIDTEST", "aws_secret_key": "secret"} if request.param == "sigv4"
            else {"api_key": "ABSKtest"})
    return AnthropicBedrockMantle(base_url=f"{sim_url}/mantle/anthropic", aws_region="us-east-1", max_retries=0,
                                  **auth)


def test_mantle_client_messages(mantle_client, recorded):
    msg = mantle_client.messages.create(model=OPUS, max_tokens=100,
                                        messages=[{"role": "user", "content": "hi from the sdk"}])
    assert msg.content[0].text == "Hello from bedrock-sim. You said: hi from the sdk"
    assert msg.stop_reason == "end_turn" and msg.usage.input_tokens > 0
    [entry] = recorded()
    assert entry["endpoint"] == "mantle" and entry["path"] == "/mantle/anthropic/v1/messages"


def test_mantle_client_stream_and_count(mantle_client):
    with mantle_client.messages.stream(model=OPUS, max_tokens=100,
                                       messages=[{"role": "user", "content": "stream [sim words=12]"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 12 and final.content[0].text == text
    counted = mantle_client.messages.count_tokens(model=OPUS, messages=[{"role": "user", "content": "count me"}])
    assert counted.input_tokens > 0


def test_mantle_client_errors(mantle_client):
    with pytest.raises(anthropic.NotFoundError) as e:
        mantle_client.messages.create(model="us." + OPUS, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "does not exist" in str(e.value)
    with pytest.raises(anthropic.BadRequestError) as e:
        mantle_client.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "x"}],
                                      extra_headers={"anthropic-beta": "claude-code-20250219"})
    assert "anthropic-beta" in str(e.value)
    with pytest.raises(anthropic.RateLimitError):
        mantle_client.messages.create(model=OPUS, max_tokens=10,
                                      messages=[{"role": "user", "content": "x [sim error=throttling]"}])


def test_mantle_client_without_auth_is_refused(sim_url):
    client = AnthropicBedrockMantle(base_url=f"{sim_url}/mantle/anthropic", aws_region="us-east-1", skip_auth=True,
                                    max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.fixture
def bedrock_client(sim_url):
    return AnthropicBedrock(base_url=sim_url, aws_access_key="AKIDTEST", aws_secret_key="secret",
                            aws_region="us-east-1", max_retries=0)


def test_bedrock_client_on_a_profile_only_model(bedrock_client, recorded):
    msg = bedrock_client.messages.create(model="us." + OPUS, max_tokens=100,
                                         messages=[{"role": "user", "content": "invoke me"}])
    assert "invoke me" in msg.content[0].text
    assert recorded()[0]["operation"] == "InvokeModel"
    with pytest.raises(anthropic.BadRequestError) as e:
        bedrock_client.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "on-demand throughput" in str(e.value)


def test_bedrock_client_first_party_beta_is_refused(bedrock_client):
    with pytest.raises(anthropic.BadRequestError) as e:
        bedrock_client.beta.messages.create(model="us." + OPUS, max_tokens=10, betas=["files-api-2025-04-14"],
                                            messages=[{"role": "user", "content": "x"}])
    assert "Unexpected value(s) `files-api-2025-04-14`" in str(e.value)
