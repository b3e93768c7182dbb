"""Generate, score and report (issue #4)."""
