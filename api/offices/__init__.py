"""The office: the tenant every row belongs to, with its time zone and settings."""
