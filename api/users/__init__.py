"""Users: agents and admins, their rights, login and tokens."""
