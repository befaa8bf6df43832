"""The `many` workload on APScheduler 3: N interval jobs, period 1 s, all on one grid, for D
seconds, in a BackgroundScheduler with its defaults (a pool of 10 threads, misfire grace 1 s).
Run by `scheduler-bench compare`; prints one JSON line shaped as the bench's own.

Lateness is measured where the pool's thread starts the run: APScheduler's `run_job` is
wrapped, and each run time it was handed is compared with the moment it began."""

import datetime
import importlib.metadata
import json
import resource
import sys
import time

import apscheduler.executors.pool as pool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

n, seconds = int(sys.argv[1]), max(1, int(sys.argv[2]))
lateness = []  # list.append holds the GIL: safe from the pool's threads
run_job = pool.run_job


def timed_run_job(job, jobstore_alias, run_times, logger_name):
    started = datetime.datetime.now(datetime.timezone.utc)
    for run_time in run_times:
        lateness.append((started - run_time).total_seconds())
    return run_job(job, jobstore_alias, run_times, logger_name)


pool.run_job = timed_run_job


def noop():
    pass


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


scheduler = BackgroundScheduler(timezone="UTC")
# Far enough ahead that adding N jobs finishes before the first fire.
lead = 2 + n // 5000
start = datetime.datetime.fromtimestamp(int(time.time()) + lead, datetime.timezone.utc)
end = start + datetime.timedelta(seconds=seconds - 1)
for i in range(n):
    scheduler.add_job(
        noop, IntervalTrigger(seconds=1, start_date=start, end_date=end), id=f"many-{i}"
    )
scheduler.start()


def sleep_until(t):
    remaining = (t - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)


sleep_until(start - datetime.timedelta(milliseconds=200))
before = cpu_seconds()
# The same window as the bench's own `many`; runs that start later still count, late.
sleep_until(end + datetime.timedelta(milliseconds=800))
after = cpu_seconds()
sleep_until(end + datetime.timedelta(seconds=3))
scheduler.shutdown(wait=False)

ms = sorted(x * 1000.0 for x in lateness)


def at(q):
    if not ms:
        return None
    index = min(max(int(-(-len(ms) * q // 1)), 1), len(ms)) - 1
    return round(ms[index], 3)


print(
    json.dumps(
        {
            "workload": "many",
            "scheduler": "APScheduler " + importlib.metadata.version("apscheduler"),
            "n": n,
            "seconds": seconds,
            "fires": len(ms),
            "lost": max(0, n * seconds - len(ms)),
            "lateness_ms": {"p50": at(0.5), "p99": at(0.99), "max": ms[-1] if ms else None},
            "cpu_seconds": round(after - before, 3),
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
)
