"""Seeing mail arrive: the destination post office, the Maildir and IMAP watchers, and the run's
mailboxes.
"""
