"""Widgets shared by the panes: token chips and their view."""
