"""Benchmarks behind ``cubemem bench``: LoCoMo evidence recall, latency and scale."""
