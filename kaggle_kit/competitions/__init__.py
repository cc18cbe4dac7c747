"""Competitions as declarations: the dataclass and its TOML, the registry, metrics, generated samples in each
competition's download layout, and the resolution of a named recipe for a competition's data."""
