"""The stage config schema (config/<stage>.yaml, config/pipeline.yaml): pydantic models, one module
per top-level key over the strict base in base.py; stage.py composes them and loads the files, and
errors.py words what a bad file is told."""
