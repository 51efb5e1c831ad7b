"""rai-server: the HTTP(S) API that is the only thing clients talk to (it alone holds Redis, queue, store
and database credentials, with raid and the console)."""
