"""Pieces shared by every domain: settings, database, policy, errors, pagination, loaders."""
