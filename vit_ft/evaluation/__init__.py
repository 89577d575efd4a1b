"""Metrics (shipped evaluate modules), `vit-ft evaluate`, `vit-ft predict` and plots."""
