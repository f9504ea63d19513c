"""LLMMixer's benchmarks: every figure measured against a baseline in the same run (``python -m bench``)."""
