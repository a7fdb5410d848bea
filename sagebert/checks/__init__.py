"""Checks run before anything reaches AWS: the synth gates and the deploy preflight."""
