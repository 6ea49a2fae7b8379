"""Generating load: the generator's sessions working through the schedule, and the pipelined reply
chain that sends message after message.
"""
