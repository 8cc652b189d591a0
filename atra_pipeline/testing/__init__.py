"""Test doubles shipped with the package (a fake exchange for tests and the README walkthrough)."""
