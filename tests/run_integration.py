#!/usr/bin/env python3
"""Run the zenn-gateway integration tests.

Discovers tests/integration/test_*.py and runs, in file and source order, every
top-level function named test_* in each, one at a time.  A test passes if it returns,
fails if it raises (the reason and a short traceback are printed), and is skipped if
it raises zgtest.Skip.  Before each test the fake upstream's recorded requests and
/_fake/config defaults are reset (zgtest.reset_between_tests).  An optional module-level setup_module() runs before a file's
tests (if it raises Skip, all of them are skipped; anything else, all of them fail) and teardown_module() after.

Output: "PASS file::name" / "FAIL file::name: reason" / "SKIP file::name: reason",
then a last line "N passed, N failed".  Exit status 1 on any failure or when no test
ran.  The stack comes from ZG_BASE / ZG_FAKE / ZG_ADMIN (see tests/lib/zgtest.py);
normally ./dev test starts it and sets them.

  python3 tests/run_integration.py [-k PATTERN]... [-x] [--list] [FILE...]

-k PATTERN  run only tests whose "file::name" contains PATTERN (case-insensitive;
            several -k: any of them)
-x          stop at the first failure
--list      print the selected tests and exit
"""

import argparse
import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_DIR = os.path.join(HERE, "integration")
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, TEST_DIR)

import zgtest  # noqa: E402

TEST_TIMEOUT = float(os.environ.get("ZG_TEST_TIMEOUT", "120"))


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test did not finish within %gs (ZG_TEST_TIMEOUT)" % TEST_TIMEOUT)


def load(path):
    name = "zg_it_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def tests_of(mod):
    fns = [f for n, f in inspect.getmembers(mod, inspect.isfunction)
           if n.startswith("test_") and f.__module__ == mod.__name__]
    fns.sort(key=lambda f: f.__code__.co_firstlineno)
    return fns


def short_tb(exc):
    """The frames inside test code (not this runner), last few only."""
    skip = {os.path.abspath(__file__), os.path.abspath(zgtest.__file__)}
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) not in skip and not f.filename.startswith("<frozen")]
    lines = traceback.format_list(frames[-6:])
    return "".join(lines).rstrip()


def reason_of(exc):
    if isinstance(exc, AssertionError):
        msg = str(exc)
        if not msg:
            frames = traceback.extract_tb(exc.__traceback__)
            msg = "assertion failed: " + (frames[-1].line or "?") if frames else "assertion failed"
        return msg
    return "%s: %s" % (type(exc).__name__, exc)


def call(fn):
    """Run fn with the per-test timeout; returns None or the exception raised."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        fn()
        return None
    except BaseException as e:  # noqa: B902 - a test may raise anything, even SystemExit
        if isinstance(e, KeyboardInterrupt):
            raise
        return e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main():
    ap = argparse.ArgumentParser(description="zenn-gateway integration tests")
    ap.add_argument("-k", action="append", default=[], metavar="PATTERN")
    ap.add_argument("-x", action="store_true", help="stop at the first failure")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()

    if args.files:
        files = [os.path.abspath(f) for f in args.files]
    else:
        files = sorted(os.path.join(TEST_DIR, f) for f in os.listdir(TEST_DIR)
                       if f.startswith("test_") and f.endswith(".py"))
    pats = [p.lower() for p in args.k]

    def selected(label):
        return not pats or any(p in label.lower() for p in pats)

    passed = failed = skipped = 0
    t_start = time.monotonic()
    stop = False
    for path in files:
        if stop:
            break
        fname = os.path.basename(path)
        try:
            mod = load(path)
        except BaseException as e:  # noqa: B902
            if isinstance(e, KeyboardInterrupt):
                raise
            if pats and not selected(fname):
                continue
            print("FAIL %s::<import>: %s" % (fname, reason_of(e)))
            print("    " + short_tb(e).replace("\n", "\n    "))
            failed += 1
            stop = args.x
            continue
        chosen = [f for f in tests_of(mod) if selected("%s::%s" % (fname, f.__name__))]
        if not chosen:
            continue
        if args.list:
            for f in chosen:
                print("%s::%s" % (fname, f.__name__))
            continue

        setup = getattr(mod, "setup_module", None)
        err = call(setup) if callable(setup) else None
        if isinstance(err, zgtest.Skip):
            # the whole file does not apply to this setup
            for f in chosen:
                print("SKIP %s::%s: %s" % (fname, f.__name__, err), flush=True)
                skipped += 1
            continue
        if err is not None:
            for f in chosen:
                print("FAIL %s::%s: setup_module failed: %s" % (fname, f.__name__, reason_of(err)))
                failed += 1
            print("    " + short_tb(err).replace("\n", "\n    "))
            stop = args.x
            continue

        for f in chosen:
            label = "%s::%s" % (fname, f.__name__)
            t0 = time.monotonic()
            err = call(zgtest.reset_between_tests)
            if err is not None:
                err = AssertionError("resetting the fake upstream failed: %s" % reason_of(err))
            else:
                err = call(f)
            took = time.monotonic() - t0
            if err is None:
                print("PASS %s" % label, flush=True)
                passed += 1
            elif isinstance(err, zgtest.Skip):
                print("SKIP %s: %s" % (label, err), flush=True)
                skipped += 1
            else:
                print("FAIL %s: %s" % (label, reason_of(err).replace("\n", " | ")), flush=True)
                tb = short_tb(err)
                if tb:
                    print("    " + tb.replace("\n", "\n    "))
                print("    (after %.2fs)" % took, flush=True)
                failed += 1
                if args.x:
                    stop = True
                    break

        teardown = getattr(mod, "teardown_module", None)
        if callable(teardown):
            err = call(teardown)
            if err is not None:
                print("FAIL %s::teardown_module: %s" % (fname, reason_of(err)))
                failed += 1

    if args.list:
        return 0
    if passed + failed + skipped == 0:
        print("no test selected" + (" by -k %s" % " -k ".join(args.k) if args.k else ""))
    if skipped:
        print("(%d skipped)" % skipped)
    print("integration: %.1fs" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
