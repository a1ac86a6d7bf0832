"""``wheelpatch-install``'s engine: the target environment, resolution through pip, installer's
source and destination, the stash and transaction, and the pipeline joining them.
"""
