"""Thinkube: the s1 recipe (curate -> fine-tune -> serve with budget forcing -> evaluate) on Kubernetes."""

__version__ = "0.1.0"
