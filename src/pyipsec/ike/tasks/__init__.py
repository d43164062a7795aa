"""Tasks: the protocol logic of each exchange, one concern per module."""
