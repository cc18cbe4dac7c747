"""Streamed inference with TTA and calibration -> a run's test probabilities and its submission; error
analysis from stored predictions."""
