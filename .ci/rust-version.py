#!/usr/bin/env python3
"""Check that every workspace crate declares an honest `rust-version` (MSRV).

Why: we build with one toolchain only, so nothing tells us when a dependency raises its own
`rust-version` above ours and our declared MSRV silently becomes a lie (users on that toolchain
then get a resolver or compile error we never saw). This script derives the floor from
Cargo.lock instead: a crate needs at least the largest `rust-version` of any package it
depends on (normal and build edges, all features on, as locked), and at least what its edition
needs. Packages without a `rust-version` are unknown and ignored. Dev-dependencies do not bind
users; they are shown in a separate, informational column.

Usage: .ci/rust-version.py [--write-suggestion] [--target TRIPLE | --all-targets]
Exits 1 if any crate declares less than it needs, 2 if cargo metadata fails. Never edits a file.
"""
import argparse
import json
import subprocess
import sys
from collections import deque

# Platform: by default the graph is filtered to the target CI builds and tests on, so that a
# dependency we never compile or run (Windows-only `windows-sys`, `etcetera`, ...) does not set
# a floor we cannot check. `rust-version` is a promise to every platform though, so
# `--all-targets` drops the filter to see what Windows/macOS users need (today: same numbers).
DEFAULT_TARGET = "x86_64-unknown-linux-gnu"
EDITION_MSRV = {"2015": "1.0", "2018": "1.31", "2021": "1.56", "2024": "1.85"}


def ver(text):
    """'1.94' -> (1, 94, 0): compare numerically, so 1.94 > 1.9."""
    parts = [int(p) for p in text.split("-")[0].split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def fmt(v):
    """(1, 94, 0) -> '1.94'."""
    return ".".join(map(str, v[:2] if v[2] == 0 else v))


def closure_max(start, graph, pkgs, first_hop_kinds, floor):
    """Max (rust-version, reason) over `floor` and everything reachable from `start`.

    `first_hop_kinds` is the set of edge kinds followed out of `start`; beyond it only normal
    (None) and build edges are followed, as a dependency's dev-dependencies are never built.
    Breadth-first, and only a strictly higher version replaces the answer, so on a tie the
    reason is the crate's own floor (its edition) or else the dependency closest to it.
    """
    best, seen, todo = floor, {start}, deque([(start, first_hop_kinds)])
    while todo:
        node, kinds = todo.popleft()
        for dep in graph[node]:
            if dep["pkg"] in seen or not any(k["kind"] in kinds for k in dep["dep_kinds"]):
                continue
            seen.add(dep["pkg"])
            todo.append((dep["pkg"], {None, "build"}))
            pkg = pkgs[dep["pkg"]]
            if pkg.get("rust_version") and ver(pkg["rust_version"]) > best[0]:
                best = (ver(pkg["rust_version"]), f'{pkg["name"]} {pkg["version"]}')
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-suggestion", action="store_true",
                    help="print the Cargo.toml lines that would make the check pass")
    ap.add_argument("--target", default=DEFAULT_TARGET, help="platform to filter the graph to")
    ap.add_argument("--all-targets", action="store_true", help="do not filter by platform")
    args = ap.parse_args()

    cmd = ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"]
    if not args.all_targets:
        cmd += ["--filter-platform", args.target]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # cargo's stderr passes through
    if run.returncode != 0:
        print(f"rust-version: `{' '.join(cmd)}` failed (see above); a manifest change whose "
              "Cargo.lock is not updated yet fails --locked: update the lock file first",
              file=sys.stderr)
        return 2
    meta = json.loads(run.stdout)
    pkgs = {p["id"]: p for p in meta["packages"]}
    graph = {n["id"]: n["deps"] for n in meta["resolve"]["nodes"]}

    rows, short = [], []
    for member in sorted(meta["workspace_members"], key=lambda i: pkgs[i]["name"]):
        pkg = pkgs[member]
        declared = pkg.get("rust_version")
        edition = (ver(EDITION_MSRV[pkg["edition"]]), f'edition {pkg["edition"]}')
        need = closure_max(member, graph, pkgs, {None, "build"}, edition)
        dev = closure_max(member, graph, pkgs, {None, "build", "dev"}, edition)
        rows.append((pkg["name"], declared or "-", fmt(need[0]), need[1],
                     f"{fmt(dev[0])} ({dev[1]})"))
        if declared is None or ver(declared) < need[0]:
            short.append((pkg, fmt(need[0]), need[1]))

    head = ("crate", "declared", "needed", "needed by", "with dev-deps (info)")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f'\n(graph: {"all platforms" if args.all_targets else args.target}, all features, '
          "normal + build edges; packages without rust-version ignored)")

    if not short:
        return 0
    sys.stdout.flush()
    print("\nrust-version: declared below what the dependency closure needs:", file=sys.stderr)
    for pkg, need, why in short:
        print(f'  {pkg["name"]}: declares {pkg.get("rust_version") or "nothing"}, '
              f"needs {need} ({why})", file=sys.stderr)
    if args.write_suggestion:
        print("\nSuggested Cargo.toml lines (not applied): in each manifest's [package], replace "
              "`rust-version.workspace = true` with")
        for pkg, need, why in short:
            print(f'  {pkg["manifest_path"]}:  rust-version = "{need}"  # {why}')
        top = max((s[1] for s in short), key=ver)
        print(f'or raise [workspace.package] rust-version = "{top}" '
              "(simpler, but also raises the crates that do not need it)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
