"""The torch_eager backend: its Backend subclass (backend.py) and its settings (config.py)."""
