"""Checkpoints (safe loading, integrity digests, atomic saving) and atomic file writes."""
