"""Patching wheel files: the pure plan, the archive writer, batches, provenance, ``show`` and
the library entry points.
"""
