"""Builds with hatchling: the pure build planning and the plugin (version source, metadata hook,
build hook) that adapts it to hatchling.
"""
