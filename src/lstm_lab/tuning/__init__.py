"""Ray Tune sweeps over any pipeline: search spaces (space.py) and the sweep runner (sweep.py)."""
