"""Package indexes: a wheelhouse published as a static PEP 503/691 simple repository with PEP 658
metadata beside every wheel (``wheelpatch index``), and a proxy of upstream indexes that patches
overridden wheels on the fly (``wheelpatch serve``, the ``serve`` extra)."""
