"""Reports over the contacts a caller sees (R19)."""
