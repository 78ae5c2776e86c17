"""Probes, control tasks, baselines, metrics and layer summaries.

Modules (import names from them directly; this package imports no torch, so validating a study
stays cheap):

- :mod:`~probe.probes.config`: the ``probe`` and ``capture`` study sections (pure schema);
- :mod:`~probe.probes.linear`: :class:`~probe.probes.linear.LayerwiseLogisticRegression`;
- :mod:`~probe.probes.control`: control tasks (Hewitt & Liang 2019);
- :mod:`~probe.probes.baselines`: the majority-class baseline;
- :mod:`~probe.probes.metrics`: accuracy, macro-F1, SemEval's official F1, bootstrap CIs;
- :mod:`~probe.probes.spans`: word, span and pair features;
- :mod:`~probe.probes.summaries`: scalar mix, cumulative mix-k, center of gravity;
- :mod:`~probe.probes.summary_rules`: when a center of gravity is meaningful (torch-free);
- :mod:`~probe.probes.checks`, :mod:`~probe.probes.stage`: the stage's checks and entry.

Examples
--------
>>> from probe.probes.metrics import accuracy
>>> accuracy([0, 1], [0, 0])
0.5
"""

from probe.probes.config import CaptureSection, ProbeSection, SpanSection

__all__ = ["CaptureSection", "ProbeSection", "SpanSection"]
