"""For tests/check.rs: a program that never binds its port."""
import time

print("thinking...")
time.sleep(60)
