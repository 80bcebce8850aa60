"""Watching model repositories: local folders, polling, remote object stores."""
