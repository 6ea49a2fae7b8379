"""Worker processes: the child side (a generator or post office in its own process), the parent
side (fleets that look like one), and the typed messages between them.
"""
