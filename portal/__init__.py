"""The resident portal: server-rendered pages under /my/ and /stops/ (issue 17)."""
