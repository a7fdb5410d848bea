"""sagebert developer tools: build the model archive, generate the image catalog, report on synth."""
