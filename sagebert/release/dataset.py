"""Build the shipped sentiment splits from the hand-written files in data/sentiment/raw/.

`python -m sagebert dataset` reads every raw/*.jsonl ({"text", "label"}), checks it (labels,
empty texts, duplicates), and writes train/validation/test.jsonl with a fixed seed, stratified by
source file and label, so each split is balanced and covers every domain. Deterministic: the
tests rebuild the splits and compare them with the committed ones.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from sagebert.paths import DATA_DIR

LABELS = ("negative", "positive")
SPLITS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
SEED = 20261126


class DatasetError(Exception):
    """A raw file that cannot go into the data set; the message names the file and line."""


def normalise(text: str) -> str:
    """The form in which two texts count as the same (case, punctuation and spacing ignored): no duplicates."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def read_raw(raw_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Rows per raw file (domain = file stem), checked; DatasetError on the first problem."""
    files = sorted(raw_dir.glob("*.jsonl"))
    if not files:
        raise DatasetError(f"{raw_dir}: no *.jsonl files.")
    seen: dict[str, str] = {}
    domains: dict[str, list[dict[str, str]]] = {}
    for file in files:
        rows = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{file.name}:{number}"
            row = json.loads(line)
            text, label = str(row.get("text", "")).strip(), row.get("label")
            if not text or label not in LABELS:
                raise DatasetError(f"{where}: needs a non-empty text and a label in {LABELS}; got {row!r}.")
            key = normalise(text)
            if key in seen:
                raise DatasetError(f"{where}: duplicate of {seen[key]}: {text!r}.")
            seen[key] = where
            rows.append({"text": text, "label": label, "domain": file.stem})
        domains[file.stem] = rows
    return domains


def split(domains: dict[str, list[dict[str, str]]], seed: int = SEED) -> dict[str, list[dict[str, str]]]:
    """Stratified by (domain, label): every split gets its share of each."""
    rng = random.Random(seed)
    out: dict[str, list[dict[str, str]]] = {name: [] for name, _ in SPLITS}
    for domain in sorted(domains):
        for label in LABELS:
            group = [r for r in domains[domain] if r["label"] == label]
            rng.shuffle(group)
            start = 0
            for index, (name, share) in enumerate(SPLITS):
                end = len(group) if index == len(SPLITS) - 1 else start + round(share * len(group))
                out[name].extend(group[start:end])
                start = end
    for rows in out.values():
        rng.shuffle(rows)
    return out


def render(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(data_dir: Path = DATA_DIR) -> int:
    splits = split(read_raw(data_dir / "raw"))
    for name, rows in splits.items():
        (data_dir / f"{name}.jsonl").write_text(render(rows), encoding="utf-8")
        counts = {label: sum(r["label"] == label for r in rows) for label in LABELS}
        print(f"{name:<10} {len(rows):>5} rows  {counts}")
    return 0
