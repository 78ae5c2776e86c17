"""Probes, control tasks, baselines, metrics and layer summaries.

Public names are listed in ``__all__`` and imported on first use (PEP 562 ``__getattr__``):
``import probe.probes`` stays cheap (no torch import until a torch-backed name is touched), and a
missing optional module fails only when one of its names is used.

Examples
--------
>>> from probe.probes import accuracy, center_of_gravity
>>> accuracy([0, 1], [0, 0])
0.5
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # linear.py
    "LayerwiseLogisticRegression": "linear",
    # control.py
    "ControlTask": "control",
    # baselines.py
    "MajorityClassBaseline": "baselines",
    # metrics.py
    "METRICS": "metrics",
    "accuracy": "metrics",
    "bootstrap_ci": "metrics",
    "get_metric": "metrics",
    "macro_f1": "metrics",
    "semeval2010_official_f1": "metrics",
    # spans.py
    "SPAN_POOLINGS": "spans",
    "pair_features": "spans",
    "span_feature_dim": "spans",
    "span_features": "spans",
    "word_features": "spans",
    # summaries.py
    "ScalarMixProbe": "summaries",
    "center_of_gravity": "summaries",
    "center_of_gravity_from_deltas": "summaries",
    "cumulative_mix_scores": "summaries",
    "differential_scores": "summaries",
    "expected_layer": "summaries",
    "fit_scalar_mix": "summaries",
}

# Kept literal (not sorted(_EXPORTS)) so linters see the names; a test pins the two equal.
__all__ = [
    "METRICS",
    "SPAN_POOLINGS",
    "ControlTask",
    "LayerwiseLogisticRegression",
    "MajorityClassBaseline",
    "ScalarMixProbe",
    "accuracy",
    "bootstrap_ci",
    "center_of_gravity",
    "center_of_gravity_from_deltas",
    "cumulative_mix_scores",
    "differential_scores",
    "expected_layer",
    "fit_scalar_mix",
    "get_metric",
    "macro_f1",
    "pair_features",
    "semeval2010_official_f1",
    "span_feature_dim",
    "span_features",
    "word_features",
]

if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from probe.probes.baselines import MajorityClassBaseline
    from probe.probes.control import ControlTask
    from probe.probes.linear import LayerwiseLogisticRegression
    from probe.probes.metrics import (
        METRICS,
        accuracy,
        bootstrap_ci,
        get_metric,
        macro_f1,
        semeval2010_official_f1,
    )
    from probe.probes.spans import (
        SPAN_POOLINGS,
        pair_features,
        span_feature_dim,
        span_features,
        word_features,
    )
    from probe.probes.summaries import (
        ScalarMixProbe,
        center_of_gravity,
        center_of_gravity_from_deltas,
        cumulative_mix_scores,
        differential_scores,
        expected_layer,
        fit_scalar_mix,
    )


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'probe.probes' has no attribute {name!r}")
    value = getattr(import_module(f"probe.probes.{module_name}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
