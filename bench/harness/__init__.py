"""Throwaway real mail servers (Postfix, Dovecot) in temporary folders, for tests, runs and the
selftest.
"""
