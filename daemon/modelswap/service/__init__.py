"""The daemon: signals, sd_notify, logging set-up."""
