"""SMTP on the wire, shared by the instrument and the fake MTA: outcome types, the pipelined client
and its session, the aiosmtplib session, session options, and the fast server core with its
replies.
"""
