"""Inference handler for the Hugging Face inference toolkit (sagemaker-huggingface-inference-toolkit).

The toolkit imports this module from `code/inference.py` in the model archive and calls
model_fn -> input_fn -> predict_fn -> output_fn for each request.

Requests: JSON `{"inputs": str | [str], "parameters": {...}}`. The archive decides the answer:
- a sequence-classification model (config has id2label and a *ForSequenceClassification
  architecture) answers `[{"label", "score"}]` per text (`parameters.top_k` for more labels);
- a plain encoder (e.g. the bundled all-MiniLM-L6-v2) answers one L2-normalised, mean-pooled
  embedding per text (sentence-transformers' recipe for that model).

Runs inside the container: no aws_cdk imports, nothing downloaded, weights from safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

JSON = "application/json"
MAX_TEXTS = 64
MAX_CHARS = 10_000
MAX_TOKENS = 512  # BERT-family position embeddings; longer input is truncated, never a crash
ALLOWED_PARAMETERS = frozenset({"top_k"})


class InputError(ValueError):
    """A request the handler refuses; the message says what was wrong and what is allowed."""


@dataclass
class LoadedModel:
    tokenizer: Any
    model: Any
    classifier: bool


def model_fn(model_dir: str, context: Any = None) -> LoadedModel:
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
    classifier = bool(config.architectures) and config.architectures[0].endswith("ForSequenceClassification")
    model_class = AutoModelForSequenceClassification if classifier else AutoModel
    model = model_class.from_pretrained(model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return LoadedModel(tokenizer=tokenizer, model=model, classifier=classifier)


def input_fn(input_data: str | bytes, content_type: str) -> dict[str, Any]:
    if (content_type or "").split(";")[0].strip().lower() != JSON:
        raise InputError(f"content type {content_type!r} is not supported; send {JSON}.")
    try:
        text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
        body = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"the body is not valid UTF-8 JSON: {err}") from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise InputError('the body must be a JSON object {"inputs": str | [str], "parameters": {...}}.')
    inputs = body["inputs"]
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise InputError("inputs must be a non-empty string or a non-empty list of non-empty strings.")
    if len(texts) > MAX_TEXTS:
        raise InputError(f"{len(texts)} texts in one request; at most {MAX_TEXTS} are allowed.")
    if any(len(t) > MAX_CHARS for t in texts):
        raise InputError(f"a text is longer than {MAX_CHARS} characters; split it or shorten it.")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("parameters must be a JSON object.")
    unknown = set(parameters) - ALLOWED_PARAMETERS
    if unknown:
        raise InputError(f"unknown parameters {sorted(unknown)}; allowed: {sorted(ALLOWED_PARAMETERS)}.")
    top_k = parameters.get("top_k", 1)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InputError("parameters.top_k must be a positive integer.")
    return {"texts": texts, "single": isinstance(inputs, str), "top_k": top_k}


def predict_fn(data: dict[str, Any], model: LoadedModel) -> list[Any]:
    texts: list[str] = data["texts"]
    # Pad only to the longest text of the request: one text is never padded at all.
    encoded = model.tokenizer(texts, padding="longest", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.inference_mode():
        output = model.model(**encoded)
    if model.classifier:
        return _labels(output.logits, model.model.config.id2label, data["top_k"])
    return _embeddings(output.last_hidden_state, encoded["attention_mask"])


def output_fn(prediction: list[Any], accept: str) -> str:
    if accept and (accept.split(";")[0].strip().lower() not in (JSON, "*/*")):
        raise InputError(f"accept {accept!r} is not supported; ask for {JSON}.")
    return json.dumps(prediction)


def _labels(logits: torch.Tensor, id2label: dict[int, str], top_k: int) -> list[Any]:
    scores = torch.softmax(logits.float(), dim=-1)
    k = min(top_k, scores.shape[-1])
    values, indices = torch.topk(scores, k, dim=-1)
    rows = [
        [{"label": id2label[int(i)], "score": float(v)} for v, i in zip(vs, ix, strict=True)]
        for vs, ix in zip(values, indices, strict=True)
    ]
    # The toolkit's pipeline answers one dict per text for top_k=1, a list per text otherwise.
    return [row[0] for row in rows] if top_k == 1 else rows


def _embeddings(hidden: torch.Tensor, mask: torch.Tensor) -> list[list[float]]:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()
