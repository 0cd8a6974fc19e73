"""The deploy artefacts (deploy/), validated offline: the compose file against the Compose
specification's schema, the rendered Kubernetes manifests against Kubernetes' schemas."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="session")
def version():
    """The workspace version, as `cargo xtask image` tags the images."""
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)
