"""Operational commands (backup, restore); the list is what app/cli.py registers."""

ops_commands: list = []
