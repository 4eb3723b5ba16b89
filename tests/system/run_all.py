#!/usr/bin/env python3
"""run_all: runs the system tests (tests/system/test_*.py) with unittest,
printing each test's name and result, and counts per test (a test with
failing subtests counts once; tests that never ran because their class could
not start its stack count as failed).

    python3 tests/system/run_all.py [--counts FILE] [-k PATTERN ...]

--counts FILE receives "passed failed skipped". Exit status 0 only when
nothing failed and at least one test ran.
"""

import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def _ids(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _ids(item)
        else:
            yield item.id()


class CountingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed_ids, self.failed_ids, self.skipped_ids = set(), set(), set()
        self.class_errors = []

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.durations.append((time.monotonic() - self._t0, test.id()))

    def startTestRun(self):
        super().startTestRun()
        self.durations = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed_ids.add(test.id())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.failed_ids.add(test.id())

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self.failed_ids.add(test.id())
        else:  # setUpClass / tearDownClass / module fixtures
            self.class_errors.append(str(test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.failed_ids.add(test.id())

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.skipped_ids.add(test.id())

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed_ids.add(test.id())

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_ids.add(test.id())


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts")
    parser.add_argument("-k", action="append", dest="patterns",
                        help="only tests whose name matches (unittest -k)")
    args = parser.parse_args(argv)

    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p if "*" not in p else p for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    all_ids = set(_ids(suite))
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult)
    t0 = time.monotonic()
    result = runner.run(suite)
    sys.stdout.flush()

    slow = sorted(result.durations, reverse=True)[:6]
    if slow:
        print("slowest tests (class start-up and shut-down not included):")
        for seconds, test_id in slow:
            print("  %6.2fs  %s" % (seconds, test_id))
    failed = set(result.failed_ids)
    skipped = set(result.skipped_ids) - failed
    passed = set(result.passed_ids) - failed - skipped
    not_run = all_ids - passed - failed - skipped
    # Discovery errors (a test module that does not import) show up as
    # failing tests of unittest.loader._FailedTest: already in failed.
    for test_id in sorted(not_run):
        print("%s ... NOT RUN (its class could not start)" % test_id)
    failed |= not_run
    # A failing tearDownClass (e.g. a process that did not exit 0 on SIGTERM)
    # is no single test's fault but a failure all the same; a failing
    # setUpClass is already counted through the tests it kept from running.
    failed |= {e for e in result.class_errors if not e.startswith("setUpClass")}
    for err in result.class_errors:
        print("class fixture failed: %s" % err)
    print("system tests: %d passed, %d failed, %d skipped in %.1fs"
          % (len(passed), len(failed), len(skipped), time.monotonic() - t0))
    if args.counts:
        with open(args.counts, "w") as f:
            f.write("%d %d %d\n" % (len(passed), len(failed), len(skipped)))
    return 0 if not failed and passed else 1


if __name__ == "__main__":
    sys.exit(main())
