"""Notifications: each user's inbox (站内通知)."""
