"""The two commands, thin adapters: ``wheelpatch`` and ``wheelpatch-install``."""
