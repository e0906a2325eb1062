"""Sweep pipelines ``tune_<pipeline>``: built by one factory for every tunable pipeline (see pipeline.py)."""
