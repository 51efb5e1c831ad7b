"""Live state in Redis: the connection (a local redis-server started on demand), the live board of jobs,
nodes and cancels, and recent usage for fair share."""
