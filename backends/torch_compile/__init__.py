"""The torch_compile backend: its Backend subclass (backend.py) and its settings (config.py)."""
