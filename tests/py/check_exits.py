"""For tests/check.rs: a 'server' that fails at start-up, as a student's
program with a bad argument would: a message on stderr, exit status 3."""
import sys

print("starting on port", sys.argv[1])
print("error: cannot read config.ini", file=sys.stderr)
sys.exit(3)
