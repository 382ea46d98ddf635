"""Test harness shared by tests/ and bench/: a running stack and simulated tablets (real PouchDB)."""
