"""Contact transfers: CRM imports and CSV exports, run as background jobs (R12, R21)."""
