"""A static package index: a wheelhouse published as a PEP 503/691 simple repository with PEP 658
metadata beside every wheel, for any web server or object store to serve."""
