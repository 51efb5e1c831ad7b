"""Contract suites: every backend of a port passes the same tests as its embedded twin."""
