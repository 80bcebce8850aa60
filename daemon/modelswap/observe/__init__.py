"""Observability: the status HTTP server (TF Serving's status JSON, health, readiness) and
Prometheus metrics."""
