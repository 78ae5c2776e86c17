"""``python -m probe`` (also what ``accelerate launch -m probe run STUDY.yaml`` starts)."""

from probe.cli import main

main()
