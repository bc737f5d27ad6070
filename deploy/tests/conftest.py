from __future__ import annotations

from typing import Any

import pytest

from deploy.tests import manifests


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered once per session (``kubectl kustomize``)."""
    if manifests.kubectl() is None:
        pytest.skip(manifests.KUBECTL_MISSING)
    return {overlay: manifests.render(manifests.K8S / overlay) for overlay in manifests.OVERLAYS}
