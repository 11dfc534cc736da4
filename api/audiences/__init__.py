"""Audiences: saved contact filters in a user's or the office-wide account (R13)."""
