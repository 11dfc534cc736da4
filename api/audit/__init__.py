"""The nightly status audit (R18) and the jobs behind import and export (R12, R21)."""
