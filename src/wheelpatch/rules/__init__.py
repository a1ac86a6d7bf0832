"""The override contract every front door shares: ``[tool.wheelpatch]`` parsed and checked,
labels and git describe, and one override applied to a list of requirements.
"""
