"""The throughput this project measured (infra/catalog/measured_throughput.json): the cost report's fallback
figures when no `make bench*` results are in build/. The file says when, on what machine and with which
command each figure was taken; `make cost` reads it (sagebert/report/cost.py), synth never does.
"""

from __future__ import annotations

from pathlib import Path

MEASURED_THROUGHPUT_FILE = Path(__file__).with_name("measured_throughput.json")
