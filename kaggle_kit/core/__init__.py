"""Foundations every stage uses: the one error type, progress with ETA, file locks, safe archives, atomic
file writes, the command line being run, and process groups / launchers for several processes."""
