"""sagebert developer tools: build the model archive, generate the image catalog, report on synth.

Runs on a developer machine or in CI, never in AWS. `python -m sagebert` (the Makefile's verbs) is the
entry; the checkout's locations are in `sagebert.paths`.
"""
