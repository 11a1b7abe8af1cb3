"""Data services: query, cross-verification and batch exchange of granted data."""
