"""Fixtures for the Helm chart tests: the chart rendered offline with helm-python-sdk.

Each values scenario (the defaults, and helm/values-production.yaml) is rendered once per session.
The chart extra provides the tools: pip install -e '.[chart]'.
"""

from __future__ import annotations

import pytest

from tests.helm.chart_support import CHART_DIR, NAMESPACE, RELEASE, SCENARIOS, Rendering, scenario_values


@pytest.fixture(scope="session")
def helm():
    return pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install -e '.[chart]')")


@pytest.fixture(scope="session")
def chart(helm):
    return helm.Chart.load(str(CHART_DIR))


@pytest.fixture(scope="session")
def render(chart):
    """Render the chart with extra values (for scenarios beyond the two files)."""

    def _render(values: dict | None = None, *, name: str = RELEASE, is_upgrade: bool = False) -> Rendering:
        values = values or {}
        files = chart.render(values, name=name, namespace=NAMESPACE, is_install=not is_upgrade, is_upgrade=is_upgrade)
        return Rendering(values=values, files=files)

    return _render


@pytest.fixture(scope="session")
def default_rendering(render) -> Rendering:
    return render(scenario_values("default"))


@pytest.fixture(scope="session")
def production_rendering(render) -> Rendering:
    return render(scenario_values("production"))


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def scenario(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def rendering(scenario, default_rendering, production_rendering) -> Rendering:
    """Each values file's rendering, rendered once per session."""
    return {"default": default_rendering, "production": production_rendering}[scenario]
