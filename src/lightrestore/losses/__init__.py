"""Training losses (``loss=`` config group)."""
