"""Shared fixtures. CDK tests share one Python process (jsii costs seconds per start-up)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = REPO_ROOT / "build" / "model.tar.gz"

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def default_artifact() -> Path:
    """The default model archive that `make test` builds before running the suite."""
    if not ARTIFACT.is_file():
        pytest.fail(f"{ARTIFACT} is missing: run the suite through `make test`, which builds it.")
    return ARTIFACT


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForSequenceClassification saved as a real HF folder (safetensors)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-classifier")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "not", "the", "app"]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,  # the handler truncates at 512 tokens, as BERT does
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: a dry run calls nothing."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network call during a dry run: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# Every botocore client the tests create records its operations (tests/call_recorder.py); the session fails on one
# the authorization gate's tables do not classify.
from tests import call_recorder  # noqa: E402

call_recorder.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = call_recorder.unclassified(call_recorder.RECORDED)
    if problems:
        print("\nAWS operations the authorization gate does not know (tests/call_recorder.py):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
