"""The wheel file: strict zip reading and raw-copy writing, RECORD, METADATA, entry points,
a checked source wheel, its digest and full verification. Imports nothing of wheelpatch but errors.
"""
