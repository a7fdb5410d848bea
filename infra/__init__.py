"""CDK code for sagebert: typed config, image catalog, constructs, stacks, stage, compliance."""
