"""Benchmarks that print a table (and a plot): model server, front door, batch, int8 recipes; `stats` is the
percentile they all report."""
