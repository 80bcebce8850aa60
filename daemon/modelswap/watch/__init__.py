"""Watching: local folders with watchdog (inotify) and poll mode; events are hints only."""
