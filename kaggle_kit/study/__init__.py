"""Experiments: plans (TOML grids of recipes x seeds), the runner, progress and the report."""
