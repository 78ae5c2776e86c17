"""The "own data" example files, written once per test process into a temporary folder.

They are generated (``probe.data.examples``), not committed: the repository keeps no data files.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from probe.data.examples import write_own_data_examples

#: A folder laid out as ``studies/own_data.yaml`` expects the working directory to be.
EXAMPLES_ROOT = Path(tempfile.mkdtemp(prefix="probe-own-data-"))
atexit.register(shutil.rmtree, EXAMPLES_ROOT, ignore_errors=True)
#: The example files themselves (``ud_german_tiny/``, ``*.jsonl``, ``*.tsv``, ``*.bio``).
OWN = write_own_data_examples(EXAMPLES_ROOT / "examples" / "own_data")
