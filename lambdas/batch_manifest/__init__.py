"""Batch transform manifest: counts a run's input and output records and writes `_manifest.json`."""
