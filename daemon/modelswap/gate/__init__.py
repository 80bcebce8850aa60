"""The completeness gate: listing version folders and the checks a version must pass."""
