"""mailsla selftest: mailsla's own speed and memory against anchors (smtp-source, smtp-sink,
Postfix), and its fast paths against the libraries they replaced.
"""
