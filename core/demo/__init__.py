"""The demo directory: the deterministic seed (seed.py) and what serves it offline."""
