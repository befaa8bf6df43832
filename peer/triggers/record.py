#!/usr/bin/env python3
"""Differential corpus: trigger fields as Flask-APScheduler passes them to APScheduler 3.11.

Run:  target/peer-venv/bin/python peer/triggers/record.py   (from the repository root)
Writes peer/triggers/cases.json (deterministic, see peer/README.md).

Each case goes through the real Flask-APScheduler path: ``APScheduler.add_job(id, func,
**fields)`` on a (never started) ``BackgroundScheduler(timezone=<case timezone>)``, i.e.
``fix_job_def`` (dateutil parses string start_date/end_date/run_date, legacy trigger
dicts are flattened), then ``BaseScheduler._create_trigger`` (``timezone`` defaults to the
scheduler's) and the trigger constructor. Fire times come from calling
``trigger.get_next_fire_time(previous, now)`` first with (None, now), then (fire, fire).
"""

import json
import os
import random
import time

# A "timezone" field that is "" or null makes APScheduler fall back to tzlocal's local zone;
# pin it so the corpus does not depend on the machine.
os.environ["TZ"] = "UTC"
time.tzset()
from datetime import datetime, timedelta
from importlib.metadata import version
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from flask_apscheduler import APScheduler

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases.json")
SEED = 20261204
N_RANDOM = 3000
MAX_FIRES = 8
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


def _noop():
    pass


_SCHEDULERS = {}


def faps_for(zone):
    if zone not in _SCHEDULERS:
        _SCHEDULERS[zone] = APScheduler(scheduler=BackgroundScheduler(timezone=zone))
    return _SCHEDULERS[zone]


def err(e):
    return f"{type(e).__name__}: {e}"


def evaluate(zone, trigger_fields, now_iso):
    faps = faps_for(zone)
    now = datetime.fromisoformat(now_iso)
    try:
        job = faps.add_job("case", _noop, **json.loads(json.dumps(trigger_fields)))
    except Exception as e:  # noqa: BLE001 - the refusal is the datum
        return {"error": err(e)}
    finally:
        del faps.scheduler._pending_jobs[:]
    trigger = job.trigger
    fires = []
    previous, cur = None, now
    try:
        while len(fires) < MAX_FIRES:
            t = trigger.get_next_fire_time(previous, cur)
            if t is None:
                break
            fires.append(t.isoformat())
            previous = cur = t
    except Exception as e:  # noqa: BLE001
        return {"fires": fires, "error": err(e), "error_during": "get_next_fire_time"}
    return {"fires": fires}


# --------------------------------------------------------------------------- hand-picked

CASES = []
_IDS = set()


def case(cid, zone, trigger, now, note=None):
    assert cid not in _IDS, cid
    _IDS.add(cid)
    c = {"id": cid, "timezone": zone, "trigger": trigger, "now": now}
    if note:
        c["note"] = note
    CASES.append(c)


NOW = "2030-05-14T10:17:23+02:00"          # a Tuesday, Berlin summer time
NOW_UTC = "2030-05-14T08:17:23+00:00"


def cron(cid, zone="Europe/Berlin", now=NOW, note=None, **fields):
    case(cid, zone, {"trigger": "cron", **fields}, now, note)


def interval(cid, zone="Europe/Berlin", now=NOW, note=None, **fields):
    case(cid, zone, {"trigger": "interval", **fields}, now, note)


def date(cid, zone="Europe/Berlin", now=NOW, note=None, **fields):
    case(cid, zone, {"trigger": "date", **fields}, now, note)


def hand_picked():
    # ---- year
    for cid, v in [("int", 2031), ("str", "2031"), ("range", "2030-2032"), ("step-all", "*/2"),
                   ("start-step", "2030/3"), ("range-step", "2030-2040/4"),
                   ("list", "2031,2033"), ("list-spaces", "2031, 2033"),
                   ("past", 2029), ("min-1", "1969"), ("max+1", "10000"), ("max", "9999"),
                   ("reversed", "2032-2030"), ("star", "*"), ("empty", ""), ("spaced", "2031 2032")]:
        cron(f"cron-year-{cid}", year=v, month=2, day=3)
    # ---- month
    for cid, v in [("int", 6), ("str", "6"), ("range", "3-5"), ("step-all", "*/4"),
                   ("range-step", "1-10/3"), ("start-step", "2/5"), ("list", "1,6"),
                   ("list-spaces", "1, 6"), ("list-many-spaces", "1 ,  6"), ("name", "jan"),
                   ("name-upper", "JAN"), ("name-range", "jan-mar"), ("name-list", "feb,aug"),
                   ("name-range-step", "jan-jul/2"), ("name-wrap", "nov-feb"),
                   ("mixed", "jan,6"), ("full-name", "january"), ("out-13", 13),
                   ("out-0", "0"), ("reversed", "10-3"), ("quartz-L", "L"), ("quartz-q", "?"),
                   ("empty", ""), ("spaced", "1 6"), ("leading-space", " 6"),
                   ("zero-padded", "06"), ("trailing-dash", "6-"), ("negative", "-1"),
                   ("float", 6.0), ("step-zero", "*/0"), ("step-big", "*/13")]:
        cron(f"cron-month-{cid}", month=v)
    # ---- day
    for cid, v in [("int", 15), ("str", "15"), ("range", "10-12"), ("step-all", "*/10"),
                   ("range-step", "1-10/3"), ("list", "1,15"), ("list-spaces", "1, 15"),
                   ("31", 31), ("30", "30"), ("last", "last"), ("last-upper", "LAST"),
                   ("last-fri", "last fri"), ("2nd-wed", "2nd wed"), ("1st-mon", "1st mon"),
                   ("5th-fri", "5th fri"), ("3rd-sun", "3rd sun"), ("4th-sat-upper", "4TH SAT"),
                   ("last-mon-list", "last mon,1"), ("quartz-L", "L"), ("quartz-L-2", "L-2"),
                   ("quartz-LW", "LW"), ("quartz-15W", "15W"), ("quartz-W", "W"),
                   ("quartz-q", "?"), ("out-32", 32), ("out-0", 0), ("empty", ""),
                   ("spaced", "9 1"), ("reversed", "20-10"), ("step-zero", "*/0"),
                   ("name", "mon"), ("last-2", "last-2")]:
        cron(f"cron-day-{cid}", day=v)
    cron("cron-day-29-feb", day=29, month=2, note="only leap years (2032)")
    cron("cron-day-31-feb", day=31, month=2, note="never")
    cron("cron-day-30-feb-year", day=30, month=2, year="2030-2035", note="never, bounded year")
    cron("cron-day-last-feb", day="last", month=2, hour=12)
    # ---- week
    for cid, v in [("int", 1), ("str", "10"), ("range", "1-3"), ("step-all", "*/10"),
                   ("range-step", "1-20/7"), ("list", "1,52"), ("list-spaces", "1, 52"),
                   ("53", "53"), ("out-54", 54), ("out-0", "0"), ("empty", ""),
                   ("name", "jan")]:
        cron(f"cron-week-{cid}", week=v)
    cron("cron-week-53-2032", week=53, year="2030-2040", note="ISO weeks with a week 53")
    cron("cron-week-1-dow", week=1, day_of_week="mon", hour=9)
    # ---- day_of_week
    for cid, v in [("int-0", 0), ("str-0", "0"), ("int-6", 6), ("mon", "mon"),
                   ("MON", "MON"), ("mon-fri", "mon-fri"), ("sun", "sun"), ("sat-sun", "sat-sun"),
                   ("wrap-fri-mon", "fri-mon"), ("wrap-num-5-1", "5-1"), ("list", "sat,sun"),
                   ("list-spaces", "sat, sun"), ("num-list-spaces", "0, 6"),
                   ("step-all", "*/2"), ("range-step", "1-5/2"), ("name-range-step", "mon-fri/2"),
                   ("out-7", 7), ("mixed", "mon,3-4"), ("full-name", "monday"),
                   ("last-fri", "last fri"), ("2nd-wed", "2nd wed"), ("last", "last"),
                   ("quartz-hash", "5#3"), ("quartz-hash-name", "FRI#2"), ("quartz-L", "L"),
                   ("quartz-6L", "6L"), ("quartz-q", "?"), ("empty", ""),
                   ("spaced", "mon fri"), ("negative", "-1")]:
        cron(f"cron-dow-{cid}", day_of_week=v, hour=9)
    # ---- hour
    for cid, v in [("int", 9), ("str", "9"), ("range", "9-17"), ("step-all", "*/2"),
                   ("range-step", "1-10/3"), ("start-step", "5/6"), ("list", "9,17"),
                   ("list-spaces", "9, 17"), ("list-3", "1,12,23"), ("out-24", 24),
                   ("out-24-str", "24"), ("23", "23"), ("negative", "-1"), ("spaced", "9 1"),
                   ("fullwidth-digit", "\uff19"), ("trailing-dash", "9-"), ("empty", ""),
                   ("padded", " 9 "), ("zero-pad", "09"),
                   ("word", "noon"), ("float", 9.5), ("float-int", 9.0), ("bool", True),
                   ("null", None), ("step-zero", "*/0"), ("step-big", "*/24"),
                   ("step-over-range", "1-2/5"), ("reversed", "17-9"), ("comma-only", ","),
                   ("trailing-comma", "9,"), ("double-comma", "9,,17"), ("star-range", "*-5"),
                   ("list-range-step", "0-6/2,20-23")]:
        cron(f"cron-hour-{cid}", hour=v)
    # ---- minute
    for cid, v in [("int", 30), ("zero", 0), ("str", "30"), ("step-all", "*/15"),
                   ("range-step", "0-59/20"), ("list", "5,35"), ("list-spaces", "5, 35"),
                   ("out-60", 60), ("59", "59"), ("step-zero", "*/0"), ("step-60", "*/60"),
                   ("step-7", "*/7"), ("range", "10-12"), ("spaced", "5 35")]:
        cron(f"cron-minute-{cid}", minute=v)
    # ---- second
    for cid, v in [("int", 15), ("str", "59"), ("step-all", "*/30"), ("list", "0,30"),
                   ("list-spaces", "0, 30"), ("out-60", 60), ("range-step", "10-50/20")]:
        cron(f"cron-second-{cid}", second=v)
    # ---- combinations
    cron("cron-combo-weekday-business", day_of_week="mon-fri", hour="9-17", minute="*/30")
    cron("cron-combo-day-and-dow", day=13, day_of_week="fri",
         note="APScheduler ANDs day and day_of_week (Friday the 13th), unlike Vixie cron")
    cron("cron-combo-day-range-and-dow", day="1-7", day_of_week="mon", hour=8,
         note="first Monday of each month")
    cron("cron-combo-week-and-day", week=2, day=10)
    cron("cron-combo-all-fields", year="2030-2031", month="1-6", day="1-28", week="*",
         day_of_week="mon-fri", hour="8-18/2", minute="15,45", second="30")
    cron("cron-combo-only-second", second=0, note="minute and higher stay '*': every minute")
    cron("cron-combo-only-year", year=2031, note="lower fields default to their minimum")
    cron("cron-combo-hour-minute-int-types", hour=9, minute=5, second=0)
    cron("cron-combo-hour-minute-str-types", hour="9", minute="5", second="0")
    cron("cron-combo-no-fields", now=NOW, note="every second")
    cron("cron-combo-month-day-last-names", month="feb-apr", day="last", hour=23,
         minute=59, second=59)
    cron("cron-combo-2nd-wed-jan-mar", month="jan-mar", day="2nd wed", hour=10)
    # ---- start_date / end_date / timezone / jitter
    cron("cron-start-naive", hour=9, start_date="2030-07-01T00:00:00")
    cron("cron-start-space", hour=9, start_date="2030-07-01 12:00:00")
    cron("cron-start-date-only", hour=9, start_date="2030-07-01")
    cron("cron-start-offset", hour=9, start_date="2030-07-01T08:00:00-05:00",
         note="offset start_date does not change the trigger zone (scheduler default wins)")
    cron("cron-start-z", hour=9, start_date="2030-07-01T07:00:00Z")
    cron("cron-start-microseconds", second="*/10", start_date="2030-07-01T00:00:00.250000")
    cron("cron-start-dateutil-words", hour=9, start_date="July 1 2030 10:00",
         note="FAPS parses start_date with dateutil")
    cron("cron-start-invalid", hour=9, start_date="not a date")
    cron("cron-start-past", hour=9, start_date="2030-01-01T00:00:00")
    cron("cron-end-naive", hour=9, end_date="2030-05-17T09:00:00")
    cron("cron-end-offset", hour=9, end_date="2030-05-17T07:00:00+00:00")
    cron("cron-end-before-now", hour=9, end_date="2030-05-01T00:00:00")
    cron("cron-start-and-end", hour="*/6", start_date="2030-08-01", end_date="2030-08-02 06:00:00")
    cron("cron-jitter-none", hour=9, jitter=None)
    cron("cron-tz-field-tokyo", hour=9, timezone="Asia/Tokyo")
    cron("cron-tz-field-utc", hour=9, timezone="UTC")
    cron("cron-tz-field-london", hour=9, timezone="Europe/London", zone="America/New_York",
         now="2030-05-14T04:17:23-04:00")
    cron("cron-tz-field-invalid", hour=9, timezone="Nowhere/Zone")
    cron("cron-tz-field-empty", hour=9, timezone="",
         note="falsy timezone: tzlocal's local zone (the recorder pins TZ=UTC)")
    cron("cron-tz-field-null", hour=9, timezone=None,
         note="null timezone: tzlocal's local zone (the recorder pins TZ=UTC)")
    cron("cron-tz-field-offset-start", hour=9, timezone="Asia/Kolkata",
         start_date="2030-07-01T00:00:00+09:00")
    cron("cron-unknown-field", hours=9)
    cron("cron-legacy-dict-form", zone="UTC", now=NOW_UTC)  # placeholder replaced below
    CASES[-1]["trigger"] = {"trigger": {"type": "cron", "hour": "9", "minute": "30"}}
    CASES[-1]["note"] = "legacy FAPS form: trigger given as a dict with 'type'"
    for z, now in [("UTC", "2030-05-14T08:17:23+00:00"),
                   ("America/New_York", "2030-05-14T04:17:23-04:00"),
                   ("Australia/Lord_Howe", "2030-05-14T18:47:23+10:30"),
                   ("Asia/Kolkata", "2030-05-14T13:47:23+05:30")]:
        zid = z.split("/")[-1].lower()
        cron(f"cron-zone-{zid}-daily-9", zone=z, now=now, hour=9, minute=0)
        cron(f"cron-zone-{zid}-mon-fri-half-hours", zone=z, now=now, day_of_week="mon-fri",
             minute="*/30", hour="8-9")
    cron("cron-now-microseconds", second="*/15", now="2030-05-14T10:17:23.999999+02:00")
    cron("cron-now-exact-fire", hour=10, minute=17, second=23, now=NOW,
         note="now equal to a fire time")
    cron("cron-now-other-offset", hour=9, now="2030-05-14T23:30:00-07:00")

    # ---- DST
    dst = [
        # (tag, zone, now: the evening before the transition)
        ("berlin-spring", "Europe/Berlin", "2030-03-30T20:00:00+01:00"),
        ("berlin-autumn", "Europe/Berlin", "2030-10-26T20:00:00+02:00"),
        ("ny-spring", "America/New_York", "2030-03-09T20:00:00-05:00"),
        ("ny-autumn", "America/New_York", "2030-11-02T20:00:00-04:00"),
        ("lordhowe-autumn", "Australia/Lord_Howe", "2030-04-06T20:00:00+11:00"),
        ("lordhowe-spring", "Australia/Lord_Howe", "2030-10-05T20:00:00+10:30"),
    ]
    for tag, z, now in dst:
        cron(f"dst-{tag}-daily-0230", zone=z, now=now, hour=2, minute=30)
        cron(f"dst-{tag}-daily-0200", zone=z, now=now, hour=2, minute=0)
        cron(f"dst-{tag}-daily-0130", zone=z, now=now, hour=1, minute=30)
        cron(f"dst-{tag}-daily-0145", zone=z, now=now, hour=1, minute=45)
        cron(f"dst-{tag}-daily-0300", zone=z, now=now, hour=3, minute=0)
        cron(f"dst-{tag}-hourly-30", zone=z, now=now, minute=30)
        cron(f"dst-{tag}-every-20min-hours-1-3", zone=z, now=now, hour="1-3", minute="*/20")
        cron(f"dst-{tag}-every-15min", zone=z, now=now, minute="*/15")
        cron(f"dst-{tag}-hour-2-every-minute-10", zone=z, now=now, hour=2, minute="*/10")
        cron(f"dst-{tag}-seconds-in-hour-2", zone=z, now=now, hour=2, minute=30, second="*/20")
        interval(f"dst-{tag}-interval-hours-1", zone=z, now=now, hours=1,
                 start_date=now[:10] + "T22:00:00")
        interval(f"dst-{tag}-interval-minutes-30", zone=z, now=now, minutes=30,
                 start_date=now[:10] + "T23:00:00")
        interval(f"dst-{tag}-interval-days-1", zone=z, now=now, days=1,
                 start_date=now[:10] + "T02:30:00",
                 note="start before now: next fire computed from now")
        interval(f"dst-{tag}-interval-days-1-future-start", zone=z, now=now, days=1,
                 start_date=now[:10] + "T23:30:00")
        interval(f"dst-{tag}-interval-weeks-1", zone=z, now=now, weeks=1,
                 start_date=now[:10] + "T21:00:00")
    # dates in gaps / folds
    for tag, z, run in [("berlin-gap", "Europe/Berlin", "2030-03-31T02:30:00"),
                        ("berlin-fold", "Europe/Berlin", "2030-10-27T02:30:00"),
                        ("ny-gap", "America/New_York", "2030-03-10T02:30:00"),
                        ("ny-fold", "America/New_York", "2030-11-03T01:30:00"),
                        ("lordhowe-gap", "Australia/Lord_Howe", "2030-10-06T02:15:00"),
                        ("lordhowe-fold", "Australia/Lord_Howe", "2030-04-07T01:45:00")]:
        date(f"dst-date-{tag}", zone=z, now="2030-01-01T00:00:00+00:00", run_date=run)
        cron(f"dst-cron-start-date-{tag}", zone=z, now="2030-01-01T00:00:00+00:00",
             minute="*/15", start_date=run)
        interval(f"dst-interval-start-{tag}", zone=z, now="2030-01-01T00:00:00+00:00",
                 minutes=20, start_date=run)

    # ---- interval
    S = "2030-06-01T00:00:00"
    interval("interval-seconds", seconds=30, start_date=S)
    interval("interval-minutes", minutes=5, start_date=S)
    interval("interval-hours", hours=2, start_date=S)
    interval("interval-days", days=3, start_date=S)
    interval("interval-weeks", weeks=2, start_date=S)
    interval("interval-all-units", weeks=1, days=2, hours=3, minutes=4, seconds=5, start_date=S)
    interval("interval-minutes-hours", minutes=30, hours=2, start_date=S)
    interval("interval-seconds-overflow-units", seconds=90061, start_date=S,
             note="normalised by timedelta")
    interval("interval-zero", seconds=0, start_date=S, note="APScheduler replaces 0 by 1 second")
    interval("interval-no-units", start_date=S)
    interval("interval-negative-seconds", seconds=-5, start_date=S)
    interval("interval-negative-hours", hours=-1, start_date=S)
    interval("interval-mixed-sign-zero", hours=1, minutes=-60, start_date=S)
    interval("interval-mixed-sign", hours=1, minutes=-30, start_date=S)
    interval("interval-float-seconds", seconds=0.5, start_date=S)
    interval("interval-float-hours", hours=1.5, start_date=S)
    interval("interval-string-seconds", seconds="30", start_date=S)
    interval("interval-null-seconds", seconds=None, start_date=S)
    interval("interval-huge-weeks-1e7", weeks=10 ** 7, start_date=S)
    interval("interval-huge-weeks-1e9", weeks=10 ** 9, start_date=S)
    interval("interval-huge-days-100-years", days=36525, start_date=S)
    interval("interval-start-before-now", minutes=7, start_date="2030-05-14T09:00:00")
    interval("interval-start-before-now-microseconds", seconds=7,
             start_date="2030-05-14T10:00:00.123456")
    interval("interval-start-offset", hours=1, start_date="2030-06-01T00:00:00-03:00")
    interval("interval-start-z", hours=1, start_date="2030-06-01T00:00:00Z")
    interval("interval-start-date-only", hours=12, start_date="2030-06-01")
    interval("interval-start-dateutil-words", hours=12, start_date="1 June 2030 10:00")
    interval("interval-start-invalid", hours=1, start_date="someday")
    interval("interval-end-date", hours=1, start_date=S, end_date="2030-06-01T03:00:00")
    interval("interval-end-date-offset", hours=1, start_date=S,
             end_date="2030-06-01T01:30:00+00:00")
    interval("interval-end-before-start", hours=1, start_date=S, end_date="2030-05-31T00:00:00")
    interval("interval-end-before-now", hours=1, start_date="2030-05-01T00:00:00",
             end_date="2030-05-10T00:00:00")
    interval("interval-tz-field", hours=6, start_date=S, timezone="Asia/Tokyo")
    interval("interval-tz-field-utc", hours=6, start_date=S, timezone="UTC")
    interval("interval-jitter-none", hours=6, start_date=S, jitter=None)
    interval("interval-unknown-field", hour=6, start_date=S)
    for z in ZONES:
        zid = z.split("/")[-1].lower()
        interval(f"interval-zone-{zid}-days-1", zone=z, days=1, start_date=S,
                 now="2030-05-20T00:00:00+00:00")

    # ---- date
    for z in ZONES:
        zid = z.split("/")[-1].lower()
        date(f"date-naive-{zid}", zone=z, run_date="2030-07-01T09:00:00")
    date("date-offset", run_date="2030-07-01T09:00:00+05:00")
    date("date-z", run_date="2030-07-01T09:00:00Z")
    date("date-space", run_date="2030-07-01 09:00:00")
    date("date-date-only", run_date="2030-07-01")
    date("date-microseconds", run_date="2030-07-01T09:00:00.5")
    date("date-dateutil-words", run_date="1 Jan 2031 10:00")
    date("date-in-past", run_date="2030-01-01T00:00:00", note="date trigger ignores now")
    date("date-invalid", run_date="tomorrow")
    date("date-tz-field", run_date="2030-07-01T09:00:00", timezone="Asia/Tokyo")
    date("date-tz-field-and-offset", run_date="2030-07-01T09:00:00+01:00",
         timezone="Asia/Tokyo")
    date("date-unknown-field", run_date="2030-07-01T09:00:00", hour=5)
    date("date-numeric-run-date", run_date=1900000000)
    # ---- trigger names
    case("trigger-unknown", "UTC", {"trigger": "weekly", "hour": 9}, NOW_UTC)
    case("trigger-uppercase", "UTC", {"trigger": "CRON", "hour": 9}, NOW_UTC)


# --------------------------------------------------------------------------- random

FIELDS = ["year", "month", "day", "week", "day_of_week", "hour", "minute", "second"]
RANGES = {"year": (2029, 2036), "month": (1, 12), "day": (1, 31), "week": (1, 53),
          "day_of_week": (0, 6), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
JUNK = ["L", "?", "W", "L-2", "5#2", "x", "", "1-", "-3", "**", "*/", "1--2", "0x1", "１"]
DST_NOWS = [
    ("Europe/Berlin", datetime(2030, 3, 30, 18)), ("Europe/Berlin", datetime(2030, 10, 26, 18)),
    ("America/New_York", datetime(2030, 3, 9, 18)), ("America/New_York", datetime(2030, 11, 2, 18)),
    ("Australia/Lord_Howe", datetime(2030, 4, 6, 18)),
    ("Australia/Lord_Howe", datetime(2030, 10, 5, 18)),
]


def rand_number(r, field, bad):
    lo, hi = RANGES[field]
    if not bad or r.random() < 0.6:
        return r.randint(lo, hi)
    if field == "year":
        return r.choice([1969, 1970, 2000, 9999, 10000])
    return r.choice([lo - 1, hi + 1, hi + r.randint(2, 40)])


def rand_step(r, span, bad):
    if bad and r.random() < 0.3:
        return r.choice([0, span + 1, span + r.randint(2, 20)])
    return r.randint(1, max(1, span))


def rand_token(r, field, bad):
    """One comma-free cron token; with bad=True about a third of them are invalid."""
    lo, hi = RANGES[field]
    if bad and r.random() < 0.2:
        return r.choice(JUNK + ([r.choice(MONTHS)] if field != "month" else ["mon"]))
    k = r.random()
    if k < 0.30:
        return str(rand_number(r, field, bad))
    if k < 0.38:
        return "*"
    if k < 0.50:
        return f"*/{rand_step(r, hi - lo, bad)}"
    if k < 0.65:
        a, b = sorted((rand_number(r, field, bad), rand_number(r, field, bad)))
        if bad and r.random() < 0.2:
            a, b = b, a
        return f"{a}-{b}"
    if k < 0.75:
        a, b = sorted((rand_number(r, field, bad), rand_number(r, field, bad)))
        return f"{a}-{b}/{rand_step(r, b - a, bad)}"
    if k < 0.78:
        a = rand_number(r, field, bad)
        return f"{a}/{rand_step(r, hi - a, bad)}"
    if field == "month":
        a = r.choice(MONTHS)
        return a if r.random() < 0.5 else "-".join(sorted((a, r.choice(MONTHS)), key=MONTHS.index))
    if field == "day_of_week":
        a = r.choice(DAYS)
        return a if r.random() < 0.5 else "-".join(sorted((a, r.choice(DAYS)), key=DAYS.index))
    if field == "day":
        return r.choice(["last", f"{r.choice(['1st', '2nd', '3rd', '4th', '5th', 'last'])} "
                         f"{r.choice(DAYS)}"])
    return str(rand_number(r, field, bad))


def rand_cron_value(r, field, bad):
    n = r.choice([1, 1, 1, 2, 3])
    tokens = [rand_token(r, field, bad) for _ in range(n)]
    if n == 1 and tokens[0].isascii() and tokens[0].isdigit() and r.random() < 0.5:
        return int(tokens[0])
    return r.choice([",", ", "]).join(tokens)


def rand_now(r):
    if r.random() < 0.15:
        zone, base = r.choice(DST_NOWS)
        local = base + timedelta(minutes=r.randint(0, 600))
    else:
        zone = r.choice(ZONES)
        local = datetime(2030, 1, 1) + timedelta(seconds=r.randint(0, 2 * 365 * 86400))
    if r.random() < 0.1:
        local = local.replace(microsecond=r.randint(0, 999999))
    aware = local.replace(tzinfo=ZoneInfo(zone))
    return zone, aware


def iso_local(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def rand_dates(r, fields, aware, p):
    if r.random() < p:
        start = aware + timedelta(seconds=r.randint(-86400 * 30, 86400 * 60))
        fields["start_date"] = iso_local(start) if r.random() < 0.7 else start.isoformat()
    if r.random() < p / 2:
        end = aware + timedelta(seconds=r.randint(0, 86400 * 200))
        fields["end_date"] = iso_local(end) if r.random() < 0.7 else end.isoformat()


def random_cases():
    r = random.Random(SEED)
    for i in range(N_RANDOM):
        zone, aware = rand_now(r)
        k = r.random()
        if k < 0.75:
            kind = "cron"
            fields = {}
            bad = r.random() < 0.35  # this case may draw invalid tokens
            for f in sorted(r.sample(FIELDS, r.randint(1, 4)), key=FIELDS.index):
                fields[f] = rand_cron_value(r, f, bad)
            rand_dates(r, fields, aware, 0.15)
        elif k < 0.95:
            kind = "interval"
            fields = {}
            for unit in r.sample(["weeks", "days", "hours", "minutes", "seconds"],
                                 r.randint(1, 3)):
                hi = {"weeks": 10, "days": 30, "hours": 48, "minutes": 120,
                      "seconds": 4000}[unit]
                v = r.randint(0, hi)
                if r.random() < 0.05:
                    v = -v
                fields[unit] = v
            start = aware + timedelta(seconds=r.randint(-86400 * 3, 86400 * 3))
            fields["start_date"] = iso_local(start) if r.random() < 0.7 else start.isoformat()
            if r.random() < 0.2:
                end = start + timedelta(seconds=r.randint(0, 86400 * 10))
                fields["end_date"] = iso_local(end)
        else:
            kind = "date"
            run = aware + timedelta(seconds=r.randint(-86400, 86400 * 100))
            fields = {"run_date": iso_local(run) if r.random() < 0.6 else run.isoformat()}
        if r.random() < 0.05:
            fields["timezone"] = r.choice(ZONES)
        case(f"rand-{i:04d}", zone, {"trigger": kind, **fields}, aware.isoformat())


def main():
    hand_picked()
    n_hand = len(CASES)
    random_cases()
    for c in CASES:
        c["expect"] = evaluate(c["timezone"], c["trigger"], c["now"])
    doc = {
        "peer": {
            "Flask-APScheduler": version("Flask-APScheduler"),
            "APScheduler": version("APScheduler"),
            "Flask": version("Flask"),
            "python-dateutil": version("python-dateutil"),
            "tzdata": version("tzdata"),
        },
        "seed": SEED,
        "max_fires": MAX_FIRES,
        "counts": {"hand_picked": n_hand, "random": len(CASES) - n_hand, "total": len(CASES)},
        "cases": CASES,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {n_hand} hand-picked + {len(CASES) - n_hand} random cases")


if __name__ == "__main__":
    main()
