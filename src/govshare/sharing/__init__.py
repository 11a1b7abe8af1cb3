"""Sharing (共享): requests, applications, deadlines, decisions and grants."""
