"""The shipped data set: big enough, balanced, unique, and its splits are what the builder makes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sagebert import paths
from sagebert.release import dataset


def load(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_committed_splits_are_rebuilt_exactly() -> None:
    splits = dataset.split(dataset.read_raw(paths.DATA_DIR / "raw"))
    for name, rows in splits.items():
        assert (paths.DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8") == dataset.render(rows), name


def test_size_balance_and_no_leaks() -> None:
    splits = {name: load(paths.DATA_DIR / f"{name}.jsonl") for name in ("train", "validation", "test")}
    everything = [row for rows in splits.values() for row in rows]
    assert len(everything) >= 1200
    for name, rows in splits.items():
        labels = Counter(r["label"] for r in rows)
        assert labels["positive"] == labels["negative"], name
        assert {r["domain"] for r in rows} == {"films", "mixed", "products", "services_apps"}, name
    texts = [dataset.normalise(r["text"]) for r in everything]
    assert len(set(texts)) == len(texts), "no text appears twice, within or across splits"
    lengths = sorted(len(r["text"].split()) for r in everything)
    assert lengths[0] <= 5 and lengths[-1] >= 35, "varied length"


def test_raw_problems_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "Great.", "label": "positive"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "great!", "label": "positive"}\n', encoding="utf-8")
    with pytest.raises(dataset.DatasetError, match=r"b\.jsonl:1: duplicate of a\.jsonl:1"):
        dataset.read_raw(tmp_path)
