#!/usr/bin/env python3
"""Record Flask-APScheduler's REST API answers to a fixed request sequence.

Run:  target/peer-venv/bin/python peer/faps/record.py   (from the repository root)
Writes peer/faps/responses.json (deterministic, see peer/README.md).

The sequence is replayed in the same order by the Rust side against its own API; every
step builds on the state the previous steps left behind.
"""

import json
import logging
import os
import random
import sys
import time
from importlib.metadata import version

os.environ["TZ"] = "UTC"  # nothing should depend on the local zone; pin it anyway
time.tzset()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # makes "peerjobs:record" importable

from flask import Flask, request  # noqa: E402
from flask_apscheduler import APScheduler  # noqa: E402

import peerjobs  # noqa: E402

OUT = os.path.join(HERE, "responses.json")
TIMEZONE = "Europe/Berlin"
# FAPS reports socket.gethostname().lower() as "current_host"; pin it so the fixture does
# not depend on the machine. Steps that show it are marked volatile: ["current_host"].
HOST_NAME = "peer-host"
JSON = "application/json"

# Jobs' functions, as sent in the request bodies.
REC = "peerjobs:record"
OTHER = "peerjobs:other"


def make_app():
    app = Flask("peer_faps")
    app.config.update(
        SCHEDULER_API_ENABLED=True,
        SCHEDULER_TIMEZONE=TIMEZONE,
        SCHEDULER_API_PREFIX="/scheduler",
    )
    scheduler = APScheduler()
    scheduler._host_name = HOST_NAME
    scheduler.init_app(app)

    seen = {}

    @app.before_request
    def _capture():  # what the server actually received, checked against the step
        seen["content_type"] = request.headers.get("Content-Type")
        seen["body"] = request.get_data(as_text=True)

    return app, scheduler, seen


# --------------------------------------------------------------------------- steps

STEPS = []


def step(name, method, path, body=None, content_type=JSON, **extra):
    """body: a Python object (sent as json.dumps(body)), a raw str (sent as is) or None."""
    if body is None:
        raw, ctype = None, None
    else:
        raw = body if isinstance(body, str) else json.dumps(body)
        ctype = content_type
    STEPS.append({"name": name, "method": method, "path": path, "content_type": ctype,
                  "body": raw, "extra": extra})


def add(name, job, **extra):
    step(name, "POST", "/scheduler/jobs", job, **extra)


J = "/scheduler/jobs"
VOL_HOST = {"volatile": ["current_host"]}

# -- scheduler info, empty list
step("info", "GET", "/scheduler", **VOL_HOST)
step("list_empty", "GET", J)

# -- interval jobs
# A Rust job receives one JSON value, so apsched refuses args and kwargs together (README,
# "Differences"); each is recorded on its own.
add("add_interval_seconds_args", {
    "id": "iv_seconds", "func": REC, "trigger": "interval", "seconds": 30,
    "start_date": "2030-01-01T00:00:00", "args": [1, "two"]})
add("add_interval_kwargs", {
    "id": "iv_kwargs", "func": REC, "trigger": "interval", "seconds": 45,
    "start_date": "2030-01-01T00:00:00", "kwargs": {"a": 1}})
add("add_interval_minutes_hours_offset_start", {
    "id": "iv_hm", "func": REC, "trigger": "interval", "minutes": 30, "hours": 2,
    "start_date": "2030-01-01T10:00:00+02:00"})
add("add_interval_weeks_days_start_end_naive", {
    "id": "iv_wd", "func": REC, "trigger": "interval", "weeks": 2, "days": 3,
    "start_date": "2030-06-01 08:00:00", "end_date": "2031-06-01 08:00:00"})
add("add_interval_tz_utc", {
    "id": "iv_utc", "func": REC, "trigger": "interval", "hours": 1,
    "start_date": "2030-01-01T00:00:00", "timezone": "UTC"})
add("add_interval_tz_new_york_offset_end", {
    "id": "iv_ny", "func": REC, "trigger": "interval", "days": 1,
    "start_date": "2030-03-09T02:30:00", "end_date": "2030-12-31T23:00:00-05:00",
    "timezone": "America/New_York"})
add("add_interval_jitter", {
    "id": "iv_jitter", "func": REC, "trigger": "interval", "seconds": 60, "jitter": 10,
    "start_date": "2030-01-01T00:00:00"},
    volatile=["next_run_time"],
    note="jitter randomises next_run_time (random is seeded, so the fixture is stable)")
add("add_interval_negative_seconds", {
    "id": "iv_negative", "func": REC, "trigger": "interval", "seconds": -5,
    "start_date": "2030-01-01T00:00:00"})
add("add_interval_zero", {
    "id": "iv_zero", "func": REC, "trigger": "interval", "seconds": 0,
    "start_date": "2030-01-01T00:00:00"})

# -- cron jobs
add("add_cron_weekdays_start_date", {
    "id": "cron_weekdays", "func": REC, "trigger": "cron", "minute": "*/15",
    "hour": "9-17", "day_of_week": "mon-fri", "start_date": "2030-01-01"})
add("add_cron_all_fields", {
    "id": "cron_fields", "func": REC, "trigger": "cron", "year": "2030-2032",
    "month": "1,6", "day": 15, "hour": 3, "minute": 5, "second": 30})
add("add_cron_week_year", {
    "id": "cron_week", "func": REC, "trigger": "cron", "year": 2030, "week": 10,
    "hour": "6"})
add("add_cron_sun", {
    "id": "cron_sun", "func": REC, "trigger": "cron", "day_of_week": "sun", "hour": 12,
    "start_date": "2030-01-01T00:00:00+01:00"})
add("add_cron_names_jan_mar_last", {
    "id": "cron_jan_mar", "func": REC, "trigger": "cron", "year": 2031,
    "month": "jan-mar", "day": "last", "hour": 8})
add("add_cron_tz_new_york", {
    "id": "cron_ny", "func": REC, "trigger": "cron", "hour": 9, "minute": 30,
    "timezone": "America/New_York", "start_date": "2030-01-01"})
add("add_cron_end_date_list_spaces", {
    "id": "cron_end", "func": OTHER, "trigger": "cron", "month": "1, 6", "day": "1",
    "start_date": "2030-01-01T00:00:00", "end_date": "2031-12-31T00:00:00+01:00"})
add("add_cron_legacy_trigger_dict", {
    "id": "cron_legacy", "func": REC, "trigger": {"type": "cron", "year": "2032",
                                                  "hour": "5"}})

# -- date jobs
add("add_date_naive", {
    "id": "date_naive", "func": REC, "trigger": "date", "run_date": "2030-05-05 12:00:00"})
add("add_date_offset", {
    "id": "date_offset", "func": REC, "trigger": "date",
    "run_date": "2030-01-01T10:00:00+02:00"})
add("add_date_tz_tokyo", {
    "id": "date_tokyo", "func": REC, "trigger": "date", "run_date": "2030-07-01T09:00:00",
    "timezone": "Asia/Tokyo"})

# -- job options
add("add_job_options", {
    "id": "opts", "func": REC, "name": "Nice name", "trigger": "interval", "minutes": 5,
    "start_date": "2030-02-01T00:00:00", "misfire_grace_time": 30, "coalesce": False,
    "max_instances": 3})
add("add_misfire_none", {
    "id": "opts_misfire_none", "func": REC, "trigger": "date",
    "run_date": "2030-02-02T00:00:00", "misfire_grace_time": None})
add("add_paused_next_run_time_null", {
    "id": "paused", "func": REC, "trigger": "cron", "hour": 4, "start_date": "2030-01-01",
    "next_run_time": None})
add("add_replace_existing", {
    "id": "date_naive", "func": OTHER, "trigger": "date", "run_date": "2030-05-06 12:00:00",
    "replace_existing": True})
add("add_without_id", {
    "func": REC, "trigger": "date", "run_date": "2030-03-03T03:03:03"})
step("add_without_content_type", "POST", J, {
    "id": "no_ctype", "func": REC, "trigger": "date", "run_date": "2030-04-04T04:04:04"},
    content_type=None)
step("add_text_plain_content_type", "POST", J, {
    "id": "text_ctype", "func": REC, "trigger": "date", "run_date": "2030-04-04T04:04:05"},
    content_type="text/plain")

# -- add errors
add("add_err_conflicting_id", {
    "id": "iv_seconds", "func": REC, "trigger": "interval", "seconds": 30,
    "start_date": "2030-01-01T00:00:00"})
add("add_err_unknown_func", {
    "id": "bad_func", "func": "nomodule:nothing", "trigger": "date",
    "run_date": "2030-01-01T00:00:00"})
add("add_err_func_not_callable_ref", {
    "id": "bad_ref", "func": "peerjobs", "trigger": "date",
    "run_date": "2030-01-01T00:00:00"})
add("add_err_missing_func", {
    "id": "no_func", "trigger": "date", "run_date": "2030-01-01T00:00:00"})
add("add_err_cron_hour_25", {
    "id": "bad_cron", "func": REC, "trigger": "cron", "hour": "25"})
add("add_err_cron_bad_day_of_week", {
    "id": "bad_dow", "func": REC, "trigger": "cron", "day_of_week": "funday"})
add("add_err_cron_unknown_field", {
    "id": "bad_field", "func": REC, "trigger": "cron", "hours": "5"})
add("add_err_interval_string_seconds", {
    "id": "bad_iv", "func": REC, "trigger": "interval", "seconds": "ten",
    "start_date": "2030-01-01T00:00:00"})
add("add_err_unknown_trigger", {
    "id": "bad_trigger", "func": REC, "trigger": "weekly", "run_date": "2030-01-01"})
add("add_err_bad_run_date", {
    "id": "bad_date", "func": REC, "trigger": "date", "run_date": "not a date"})
add("add_err_bad_timezone", {
    "id": "bad_tz", "func": REC, "trigger": "date", "run_date": "2030-01-01T00:00:00",
    "timezone": "Mars/Olympus"})
add("add_err_id_not_string", {
    "id": 42, "func": REC, "trigger": "date", "run_date": "2030-01-01T00:00:00"})
add("add_err_max_instances_zero", {
    "id": "bad_mi", "func": REC, "trigger": "date", "run_date": "2030-01-01T00:00:00",
    "max_instances": 0})
add("add_err_malformed_json", '{"id": "broken", "func": ')
add("add_err_json_array", [{"id": "arr", "func": REC}])
add("add_err_empty_body", "")

# -- reads
step("list_after_adds", "GET", J)
for jid in ("iv_seconds", "iv_ny", "iv_jitter", "cron_weekdays", "cron_fields",
            "cron_jan_mar", "date_offset", "date_tokyo", "opts", "paused", "no_ctype"):
    step(f"get_{jid}", "GET", f"{J}/{jid}",
         **({"volatile": ["next_run_time"]} if jid == "iv_jitter" else {}))
step("get_err_unknown", "GET", f"{J}/nope")
step("delete_err_unknown", "DELETE", f"{J}/nope")
step("patch_err_unknown", "PATCH", f"{J}/nope", {"name": "x"})

# -- modifications
step("patch_name", "PATCH", f"{J}/opts", {"name": "Renamed"})
step("patch_max_instances", "PATCH", f"{J}/opts", {"max_instances": 7})
step("patch_err_max_instances_zero", "PATCH", f"{J}/opts", {"max_instances": 0})
step("patch_err_unknown_attribute", "PATCH", f"{J}/opts", {"bogus": 1})
step("patch_err_change_id", "PATCH", f"{J}/opts", {"id": "other"})
step("patch_err_malformed_json", "PATCH", f"{J}/opts", '{"name": ')
step("patch_trigger_interval_to_cron", "PATCH", f"{J}/iv_hm", {
    "trigger": "cron", "hour": "7", "minute": "45", "start_date": "2030-02-01"})
step("patch_err_trigger_bad_cron", "PATCH", f"{J}/iv_hm", {"trigger": "cron", "hour": "25"})
step("get_after_bad_trigger_patch", "GET", f"{J}/iv_hm")
step("patch_trigger_cron_to_date_and_name", "PATCH", f"{J}/cron_sun", {
    "trigger": "date", "run_date": "2030-08-08T08:08:08", "name": "now a date job"})
step("patch_next_run_time", "PATCH", f"{J}/cron_weekdays",
     {"next_run_time": "2031-05-05T12:00:00+02:00"})
step("patch_args", "PATCH", f"{J}/iv_seconds", {"args": [3, 4]})
step("patch_kwargs", "PATCH", f"{J}/iv_kwargs", {"kwargs": {"b": 2}})
step("patch_func", "PATCH", f"{J}/opts", {"func": OTHER})

# -- pause / resume a job
step("pause_job", "POST", f"{J}/iv_wd/pause")
step("get_paused_job", "GET", f"{J}/iv_wd")
step("resume_job", "POST", f"{J}/iv_wd/resume")
step("get_resumed_job", "GET", f"{J}/iv_wd")
step("resume_job_added_paused", "POST", f"{J}/paused/resume")
step("pause_job_err_unknown", "POST", f"{J}/nope/pause")
step("resume_job_err_unknown", "POST", f"{J}/nope/resume")

# -- pause / resume the scheduler
step("pause_scheduler", "POST", "/scheduler/pause")
step("info_while_paused", "GET", "/scheduler", **VOL_HOST)
step("resume_scheduler", "POST", "/scheduler/resume")
step("info_after_resume", "GET", "/scheduler", **VOL_HOST)
step("start_while_running", "POST", "/scheduler/start")

# -- run now, delete
step("run_job", "POST", f"{J}/iv_seconds/run")
step("run_job_kwargs", "POST", f"{J}/iv_kwargs/run")
step("run_job_err_unknown", "POST", f"{J}/nope/run")
step("delete_job", "DELETE", f"{J}/iv_seconds")
step("get_deleted_job", "GET", f"{J}/iv_seconds")
step("list_final", "GET", J)

# -- shutdown and restart (last)
step("shutdown_no_wait", "POST", "/scheduler/shutdown", {"wait": False})
step("info_after_shutdown", "GET", "/scheduler", **VOL_HOST)
step("list_after_shutdown", "GET", J)
step("get_existing_job_while_stopped", "GET", f"{J}/cron_weekdays")
step("pause_scheduler_while_stopped", "POST", "/scheduler/pause")
step("shutdown_while_stopped", "POST", "/scheduler/shutdown", {"wait": False})
step("add_while_stopped", "POST", J, {
    "id": "late", "func": REC, "trigger": "date", "run_date": "2030-09-09T09:09:09"})
step("get_added_while_stopped", "GET", f"{J}/late")
step("start_after_shutdown", "POST", "/scheduler/start")
step("info_after_restart", "GET", "/scheduler", **VOL_HOST)
step("get_added_while_stopped_after_restart", "GET", f"{J}/late")
step("list_after_restart", "GET", J)
step("shutdown_final", "POST", "/scheduler/shutdown", {"wait": False})


# --------------------------------------------------------------------------- run

def parse_body(text):
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    logging.disable(logging.CRITICAL)  # FAPS logs every error with a traceback
    app, scheduler, seen = make_app()
    scheduler.start()
    client = app.test_client()
    out_steps = []
    try:
        for s in STEPS:
            random.seed(20261204)  # only the jitter step draws from it
            kwargs = {"method": s["method"]}
            if s["body"] is not None:
                kwargs["data"] = s["body"].encode("utf-8")
                if s["content_type"] is not None:
                    kwargs["content_type"] = s["content_type"]
            calls_before = len(peerjobs.CALLS)
            seen.clear()
            resp = client.open(s["path"], **kwargs)
            if seen:  # prove the request went out exactly as recorded
                assert seen["content_type"] == s["content_type"], (s["name"], seen)
                assert seen["body"] == (s["body"] or ""), (s["name"], seen)
            entry = {
                "name": s["name"],
                "request": {
                    "method": s["method"],
                    "path": s["path"],
                    "content_type": s["content_type"],
                    "body": s["body"],
                },
                "response": {
                    "status": resp.status_code,
                    "content_type": resp.mimetype or None,
                    "body": parse_body(resp.get_data(as_text=True)),
                },
            }
            calls = peerjobs.CALLS[calls_before:]
            if calls:
                entry["peer_calls"] = calls  # what peerjobs.record received (run endpoint)
            entry.update(s["extra"])
            out_steps.append(entry)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)

    doc = {
        "peer": {
            "Flask-APScheduler": version("Flask-APScheduler"),
            "APScheduler": version("APScheduler"),
            "Flask": version("Flask"),
        },
        "timezone": TIMEZONE,
        "host_name": HOST_NAME,
        "steps": out_steps,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(out_steps)} steps")


if __name__ == "__main__":
    main()
