"""Campaigns: emails sent by the workers from one account to one audience (R14–R17)."""
