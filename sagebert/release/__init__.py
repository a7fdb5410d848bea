"""Release tooling: dataset splits, the model archive (ONNX, int8, checked), remote training."""
