"""Resource schemas (pydantic) and the REST control plane."""
