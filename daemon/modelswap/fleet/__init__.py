"""Fleets without a control plane: the repository (a base path) is the source of truth.

`rollout` reads and writes the rollout file beside the versions and decides, purely, which
versions one member serves; `status` writes each member's status object and renders the
fleet view; `jitter` staggers swaps; `repo` is the small-object I/O on a local folder or a
remote URL; `cli` holds `modelswap rollout` and `modelswap fleet status`.
"""
