"""Job functions referenced by the FAPS recorder as "peerjobs:record" / "peerjobs:other".

Both do nothing observable; ``record`` keeps the arguments of each call in CALLS so the
recorder can note what POST /scheduler/jobs/<id>/run passed to it.
"""

CALLS = []


def record(*args, **kwargs):
    CALLS.append({"args": list(args), "kwargs": dict(kwargs)})


def other():
    pass
