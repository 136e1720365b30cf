"""The example shop app (see main.py)."""
