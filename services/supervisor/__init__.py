"""`make run`: the whole console on one machine, with embedded dependencies where none answers.

probe.py finds out whether PostgreSQL, NATS and MQTT answer at the configured URLs;
embedded.py starts what is missing (data under ACUVIM_DATA_DIR); processes.py runs a child
process with its output merged into one log stream; fleet.py keeps the six services running;
app.py ties it together and stops everything on Ctrl-C / SIGTERM.
"""
