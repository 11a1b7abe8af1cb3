"""Rulebooks (the local regulations' rules as data) and the working-day calendar."""
