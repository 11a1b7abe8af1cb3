"""Jurisdictions, departments, contact persons on file (备案), users, sessions, app credentials."""
