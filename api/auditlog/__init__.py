"""The office's audit log: who did which privileged thing, to what, and when."""
