"""Standalone OCELOT scorer: formats, validation, matching, metrics and CLI.

This package never imports torch.
"""
