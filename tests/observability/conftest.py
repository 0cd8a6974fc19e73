"""bedrock-sim, proxy-server and a real Prometheus (Debian's package) for the observability suite."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import stack as obs_stack  # noqa: E402


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = obs_stack.Stack(tmp_path_factory.mktemp("observability"))
    yield s
    s.stop()
