"""The last line of every stress script's run: ``VERDICT: CLEAN`` (exit status 0), or
``VERDICT: NOT CLEAN (reason, reason...)`` (exit status 1). CI and RESULTS.md read this line."""

from __future__ import annotations


def count(n: int, what: str) -> str:
    """``"1 problem"``, ``"3 problems"``."""
    return f"{n} {what}{'s' if n != 1 else ''}"


def verdict(reasons: list[str]) -> int:
    """Print the verdict: clean when there is no reason against it. The exit status."""
    if reasons:
        print(f"VERDICT: NOT CLEAN ({', '.join(reasons)})", flush=True)
        return 1
    print("VERDICT: CLEAN", flush=True)
    return 0
