"""Contacts: ownership (R5–R7), status (R8–R10), archive (R11), activities."""
