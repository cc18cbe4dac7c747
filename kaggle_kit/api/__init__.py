"""The public Python API, one module per area: what `import kaggle_kit as kk` exposes (`kk.train`, `kk.predict`,
`kk.runs`, ...) and what the `kaggle-kit` commands call. Nothing is imported here: `kaggle_kit.__getattr__`
imports each call's module when it is first used, so `import kaggle_kit` stays cheap."""
