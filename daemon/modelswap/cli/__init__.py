"""The `modelswap` command: run, check, inspect, status, demo."""

from modelswap.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
