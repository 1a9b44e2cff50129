"""Training-time callbacks, one concept per file (the run summary, analysis probes, detectors)."""
