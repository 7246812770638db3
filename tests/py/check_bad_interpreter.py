#!/usr/bin/python9-does-not-exist
print("never")
