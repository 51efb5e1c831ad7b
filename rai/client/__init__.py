"""The submitter's client and its command line (`rai`): profile, packing, the signed HTTP API of
rai-server. Holds no backend credential and imports no backend."""
