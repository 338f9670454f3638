"""Stored results -> tables, Pareto plots, HTML/Markdown reports, paper-style tables, selection."""
