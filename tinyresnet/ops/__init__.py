"""The ops: one ``Function`` subclass per operation, forward and backward side by side."""
