"""modelswap's benchmark suite: `python -m bench [--quick]` prints one table of figures,
targets, same-run baselines, ratios and pass/fail (see bench/README.md)."""
