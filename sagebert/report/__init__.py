"""Reports and generated files: cost, synth summary, config reference, OpenAPI, the AWS catalogs."""
