"""The mailsla command: one module per command, the shared options and the one error handler that
prints and exits.
"""
