"""Checks of an override before it is used: requirement cycles it should break, native libraries
it would leave unresolved."""
