"""bedrock-sim's Anthropic Messages API (runtime `/anthropic`, Mantle `/mantle/anthropic`) driven by
independent clients: botocore's SigV4 signer on raw HTTP (`sigv4_http`), and the official Anthropic SDK's
Bedrock clients (`AnthropicBedrock` on InvokeModel, `AnthropicBedrockMantle` on Mantle)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import recorder, start_sim, stop  # noqa: E402


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start_sim()
    yield url
    stop(proc, timeout=10)


@pytest.fixture
def recorded(sim_url):
    return recorder(sim_url)
